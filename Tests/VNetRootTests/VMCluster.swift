import Foundation
import VNetLinux

/// Lane 4: several VMs, each a host with its own kernel (Debian's, with 802.1Q) and a virtio-net NIC whose host
/// side is a tap in a switch namespace made here (a plain bridge: it forwards tagged frames untouched). qemu runs
/// inside that namespace, so nothing reaches the machine's own network. Each VM runs `Tests/vm-lane.sh host`, a
/// command server on its own share: `run` writes a script there and waits for its status. The project's binaries
/// run in the VMs unchanged from the shared root. An "outside" host is a namespace on the switch.
final class VMCluster {
    struct Host {
        var name: String
        /// Extra `-device virtio-net-pci` properties: "" is QEMU's default NIC, which filters VIDs like many
        /// real NICs (rx-vlan-filter on [fixed]); ",ctrl_vlan=off" is one that does not.
        var nic: String
        var mac: String
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var host: String, script: String, status: Int32, output: String
        var description: String { "\(host): exit \(status) from\n\(script)\n\(output.suffix(3000))" }
    }

    struct NotReady: Error, CustomStringConvertible { var description: String }

    static let script = GuestVM.repository.appendingPathComponent("Tests/vm-lane.sh").path

    let switchNS: ScratchNamespace
    let outside: ScratchNamespace
    let directory: String
    let hosts: [Host]
    var qemus: [String: Process] = [:]
    var sequence: [String: Int] = [:]
    let booted = Date()
    private(set) var readyAfter: Double = 0

    init(hosts: [Host]) throws {
        self.hosts = hosts
        switchNS = try ScratchNamespace()
        outside = try ScratchNamespace()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-lane4-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let sw = ProcessRunner(prefix: ["ip", "netns", "exec", switchNS.name])
        func sh(_ runner: ProcessRunner, _ command: String) throws { _ = try runner.run(command.split(separator: " ").map(String.init), input: nil) }
        try sh(sw, "ip link add sw type bridge")
        try sh(sw, "ip link set sw up")
        for host in hosts {
            try sh(sw, "ip tuntap add dev p-\(host.name) mode tap")
            try sh(sw, "ip link set p-\(host.name) master sw")
            try sh(sw, "ip link set p-\(host.name) up")
            let share = "\(directory)/\(host.name)"
            try FileManager.default.createDirectory(atPath: share, withIntermediateDirectories: true)
            qemus[host.name] = try NamespaceFixtures.launchTool(
                [Self.script, "host", host.name, share, "--smp", "1", "--mem", "1024M", "--",
                 "-netdev", "tap,id=n0,ifname=p-\(host.name),script=no,downscript=no",
                 "-device", "virtio-net-pci,netdev=n0,mac=\(host.mac)\(host.nic)"],
                in: switchNS, log: "\(share)/console.log")
        }
        // The outside world: a namespace on the same switch, a documentation-range address.
        try sh(sw, "ip link add p-out type veth peer name eth0 netns \(outside.name)")
        try sh(sw, "ip link set p-out master sw")
        try sh(sw, "ip link set p-out up")
        let out = ProcessRunner(prefix: ["ip", "netns", "exec", outside.name])
        try sh(out, "ip link set lo up")
        try sh(out, "ip link set eth0 up")
    }

    deinit {
        for host in hosts { FileManager.default.createFile(atPath: "\(directory)/\(host.name)/halt", contents: nil) }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, qemus.values.contains(where: \.isRunning) { Thread.sleep(forTimeInterval: 0.1) }
        // qemu started by Foundation's Process does not end on SIGTERM (an inherited signal mask): SIGKILL.
        for process in qemus.values where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        if ProcessInfo.processInfo.environment["VNET_KEEP_LANE4"] == nil { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Waits until every VM's command server runs.
    func waitUntilReady(timeout: TimeInterval = 240) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if hosts.allSatisfy({ FileManager.default.fileExists(atPath: "\(directory)/\($0.name)/ready") }) {
                readyAfter = Date().timeIntervalSince(booted)
                return
            }
            if let dead = qemus.first(where: { !$0.value.isRunning }) {
                throw NotReady(description: "\(dead.key)'s VM ended: \(console(dead.key).suffix(2000))")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw NotReady(description: "not every VM was up after \(Int(timeout)) s: " + hosts.map { "\($0.name): \(console($0.name).suffix(500))" }.joined(separator: "\n"))
    }

    func console(_ host: String) -> String { (try? String(contentsOfFile: "\(directory)/\(host)/console.log", encoding: .utf8)) ?? "" }

    /// The host's share as the guest sees it.
    let guestShare = "/vnet-vm"

    /// A file in the host's share (written by the test, read by the guest, or the other way round).
    func sharePath(_ host: String, _ name: String) -> String { "\(directory)/\(host)/\(name)" }

    /// Runs `script` (bash) on `host` and waits for it: (status, output with stderr).
    func result(_ host: String, _ script: String, timeout: TimeInterval = 120) throws -> (status: Int32, output: String) {
        let number = (sequence[host] ?? 0) + 1
        sequence[host] = number
        let base = "\(directory)/\(host)/cmd/\(number)"
        try ("set -u\n" + script + "\n").write(toFile: base + ".sh.tmp", atomically: false, encoding: .utf8)
        guard rename(base + ".sh.tmp", base + ".sh") == 0 else { throw NotReady(description: "cannot place \(base).sh") }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: base + ".rc", encoding: .utf8), let status = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return (status, (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "")
            }
            if qemus[host]?.isRunning != true { throw NotReady(description: "\(host)'s VM ended: \(console(host).suffix(2000))") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw NotReady(description: "\(host): no answer after \(Int(timeout)) s to\n\(script)\n\((try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "")")
    }

    /// `script` on `host`; its output, or an error with it when it exits other than 0.
    @discardableResult
    func run(_ host: String, _ script: String, timeout: TimeInterval = 120) throws -> String {
        let (status, output) = try result(host, script, timeout: timeout)
        guard status == 0 else { throw CommandFailed(host: host, script: script, status: status, output: output) }
        return output
    }

    /// Starts a daemon on `host`, detached, its output in the share as NAME.log.
    func start(_ host: String, _ name: String, _ command: String) throws {
        try run(host, "setsid nohup \(command) >>\(guestShare)/\(name).log 2>&1 </dev/null &")
    }

    func log(_ host: String, _ name: String) -> String { (try? String(contentsOfFile: sharePath(host, "\(name).log"), encoding: .utf8)) ?? "" }

    func onSwitch(_ command: [String]) throws -> String {
        String(decoding: try ProcessRunner(prefix: ["ip", "netns", "exec", switchNS.name]).run(command, input: nil), as: UTF8.self)
    }

    func onOutside(_ command: [String]) -> (Bool, String) {
        do { return (true, String(decoding: try ProcessRunner(prefix: ["ip", "netns", "exec", outside.name]).run(command, input: nil), as: UTF8.self)) } catch {
            return (false, "\(error)")
        }
    }
}
