import Foundation
import VNetLinux

/// A command runner that models the part of a Linux host the backend drives: links (devices, VLAN devices,
/// bridges, taps) and IPv4 addresses, read with `ip -json` and changed with `ip [-force] -batch -`, with ip's
/// own error texts ("Command failed -:N"). Every command it is given is recorded; anything it does not model
/// (iptables, sysctl, another ip form, a batch line it does not know) is refused, so a test cannot pass
/// because an unexpected command was silently accepted.
final class FakeKernel: CommandRunner, @unchecked Sendable {
    struct Link {
        var index: Int
        var kind: String?
        var master: String?
        var up = false
        var vlan: Int?
        var parent: String?
        var mac: String
    }

    struct Address: Equatable { var device: String; var cidr: String; var broadcast: String? }

    private let lock = NSLock()
    private var nextIndex = 1
    private(set) var links: [String: Link] = [:]
    private(set) var addresses: [Address] = []
    /// Every command run, in order.
    private(set) var calls: [[String]] = []
    /// The lines of every batch, one array per `ip -batch` run.
    private(set) var batches: [[String]] = []

    init(devices: [String] = ["lo", "eth0"]) {
        for device in devices { add(device, Link(index: 0, kind: nil, up: true, mac: "52:54:00:00:00:01")) }
    }

    func add(_ name: String, _ link: Link) {
        var link = link
        link.index = nextIndex
        nextIndex += 1
        links[name] = link
    }

    /// Changes made behind the backend's back (an operator, a hypervisor, a crash).
    func mutate(_ change: (FakeKernel) -> Void) { lock.lock(); change(self); lock.unlock() }
    func removeLink(_ name: String) { links[name] = nil; addresses.removeAll { $0.device == name } }
    func addAddress(_ address: Address) { addresses.append(address) }

    var snapshot: (links: [String: Link], addresses: [Address], calls: [[String]], batches: [[String]]) {
        lock.lock(); defer { lock.unlock() }
        return (links, addresses, calls, batches)
    }

    var kernel: KernelNamespace { .modelled }

    func run(_ arguments: [String], input: [UInt8]?) throws(CommandError) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        calls.append(arguments)
        switch arguments {
        case ["ip", "-json", "-details", "link", "show"]: return linksJSON()
        case ["ip", "-json", "address", "show"]: return addressesJSON()
        case ["ip", "-force", "-batch", "-"], ["ip", "-batch", "-"]:
            let force = arguments[1] == "-force"
            let lines = String(decoding: input ?? [], as: UTF8.self).split(separator: "\n").map(String.init)
            batches.append(lines)
            var stderr = ""
            for (number, line) in lines.enumerated() {
                if let error = execute(line.split(separator: " ").map(String.init)) {
                    stderr += "\(error)\nCommand failed -:\(number + 1)\n"
                    if !force { break }
                }
            }
            if !stderr.isEmpty { throw CommandError(arguments: arguments, status: 1, stderr: stderr) }
            return []
        default:
            throw CommandError(arguments: arguments, status: 127, stderr: "FakeKernel does not model this command")
        }
    }

    /// One batch line; the error ip would print, or nil.
    private func execute(_ words: [String]) -> String? {
        func exists(_ name: String) -> String? { links[name] == nil ? "Cannot find device \"\(name)\"" : nil }
        switch words {
        case let w where w.count == 10 && w.starts(with: ["link", "add", "link"]) && w[4] == "name" && w[6] == "type" && w[7] == "vlan" && w[8] == "id":
            if let error = exists(w[3]) { return error }
            guard links[w[5]] == nil else { return "RTNETLINK answers: File exists" }
            guard let id = Int(w[9]), (1...4094).contains(id) else { return "Error: argument \"\(w[9])\" is wrong: id is invalid" }
            add(w[5], Link(index: 0, kind: "vlan", vlan: id, parent: w[3], mac: links[w[3]]!.mac))
        case let w where w.count == 6 && w.starts(with: ["link", "add", "name"]) && w[4] == "type" && w[5] == "bridge":
            guard links[w[3]] == nil else { return "RTNETLINK answers: File exists" }
            add(w[3], Link(index: 0, kind: "bridge", mac: "52:54:00:00:01:\(String(format: "%02x", nextIndex))"))
        case let w where w.count == 6 && w.starts(with: ["tuntap", "add", "dev"]) && w[4] == "mode" && w[5] == "tap":
            guard links[w[3]] == nil else { return "ioctl(TUNSETIFF): Device or resource busy" }
            add(w[3], Link(index: 0, kind: "tun", mac: "52:54:00:00:02:\(String(format: "%02x", nextIndex))"))
        case let w where w.count == 6 && w.starts(with: ["link", "set", "dev"]) && w[4] == "address":
            if let error = exists(w[3]) { return error }
            links[w[3]]!.mac = w[5]
        case let w where w.count == 5 && w.starts(with: ["link", "set", "dev"]) && w[4] == "up":
            if let error = exists(w[3]) { return error }
            links[w[3]]!.up = true
        case let w where w.count == 6 && w.starts(with: ["link", "set", "dev"]) && w[4] == "master":
            if let error = exists(w[3]) ?? exists(w[5]) { return error }
            guard links[w[5]]!.kind == "bridge" else { return "Error: Device does not allow enslaving to a master." }
            guard links[w[3]]!.kind != "bridge" else { return "Error: Can not enslave a bridge to a bridge." }
            links[w[3]]!.master = w[5]
        case let w where w.count == 5 && w.starts(with: ["link", "set", "dev"]) && w[4] == "nomaster":
            if let error = exists(w[3]) { return error }
            links[w[3]]!.master = nil
        case let w where w.count == 4 && w.starts(with: ["link", "del", "dev"]):
            if let error = exists(w[3]) { return error }
            removeLink(w[3])
            for (name, link) in links where link.master == w[3] { links[name]!.master = nil }
            for (name, link) in links where link.parent == w[3] { removeLink(name) }
        case let w where w.count >= 5 && w.starts(with: ["address", "add"]) && w[w.count - 2] == "dev":
            let device = w[w.count - 1]
            if let error = exists(device) { return error }
            guard !addresses.contains(where: { $0.device == device && $0.cidr == w[2] }) else { return "RTNETLINK answers: File exists" }
            addresses.append(Address(device: device, cidr: w[2], broadcast: w.count == 7 && w[3] == "broadcast" ? w[4] : nil))
        case let w where w.count == 5 && w.starts(with: ["address", "del"]) && w[3] == "dev":
            guard let index = addresses.firstIndex(where: { $0.device == w[4] && $0.cidr == w[2] }) else { return "RTNETLINK answers: Cannot assign requested address" }
            addresses.remove(at: index)
        default:
            return "FakeKernel does not model the batch line '\(words.joined(separator: " "))'"
        }
        return nil
    }

    private func linksJSON() -> [UInt8] {
        let entries: [[String: Any]] = links.sorted { $0.value.index < $1.value.index }.map { name, link in
            var entry: [String: Any] = ["ifindex": link.index, "ifname": name, "address": link.mac, "flags": link.up ? ["BROADCAST", "UP"] : ["BROADCAST"]]
            if let master = link.master { entry["master"] = master }
            if let parent = link.parent { entry["link"] = parent }
            if let kind = link.kind {
                var info: [String: Any] = ["info_kind": kind]
                if let vlan = link.vlan { info["info_data"] = ["protocol": "802.1Q", "id": vlan] }
                entry["linkinfo"] = info
            }
            return entry
        }
        return [UInt8](try! JSONSerialization.data(withJSONObject: entries))
    }

    private func addressesJSON() -> [UInt8] {
        let entries: [[String: Any]] = links.sorted { $0.value.index < $1.value.index }.map { name, link in
            let infos: [[String: Any]] = addresses.filter { $0.device == name }.map { address in
                let parts = address.cidr.split(separator: "/")
                var info: [String: Any] = ["family": "inet", "local": String(parts[0]), "prefixlen": Int(parts[1])!]
                if let broadcast = address.broadcast { info["broadcast"] = broadcast }
                return info
            }
            return ["ifindex": link.index, "ifname": name, "addr_info": infos]
        }
        return [UInt8](try! JSONSerialization.data(withJSONObject: entries))
    }
}
