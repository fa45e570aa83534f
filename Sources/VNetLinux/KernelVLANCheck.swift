import Foundation
import VNetCore

/// The original document's manual VLAN check, automated (`verify-vlan --method kernel`): on each host, an
/// `<iface>.<vid>` device per VID with an address of the benchmarking range 198.18.0.0/15 (198.18.V.H/24, V the
/// VID's position, H the host's), pings to every peer on every VID, and the devices removed again, also on
/// failure. It needs a kernel with 802.1Q and tells the two directions apart no better than ping does; the
/// default method (raw tagged frames) needs neither.
public struct KernelVLANCheck {
    public struct Failure: Error, CustomStringConvertible { public var description: String }

    let runner: ProcessRunner
    public init(runner: ProcessRunner = ProcessRunner()) { self.runner = runner }

    static func address(vlanPosition: Int, hostPosition: Int) -> String { "198.18.\(vlanPosition).\(hostPosition + 1)" }

    /// `hosts`: every participant in the coordinator's order (this host among them). Waits `listenFirst` seconds
    /// after creating its devices, so the peers have theirs, then pings.
    /// `duration`: how long the pings may go on waiting for `count` replies (peers under load create their devices
    /// late; a ping that gets its replies early ends early).
    public func run(interface: String, name: String, hosts: [String], vlans: [Int], count: Int, listenFirst: Double,
                    duration: Double = 3) throws -> [VLANVerification.Observation] {
        guard let me = hosts.firstIndex(of: name) else { throw Failure(description: "this host is not among the participants") }
        guard hosts.count <= 254, vlans.count <= 256 else { throw Failure(description: "the kernel method takes at most 254 hosts and 256 VIDs") }
        let devices = vlans.map { "\(interface).\($0)" }
        if let long = devices.first(where: { NameRules.interfaceNameProblem($0) != nil }) { throw Failure(description: "\(long): \(NameRules.interfaceNameProblem(long)!)") }
        let existing = Set(((try? LinkObservation.links(fromJSON: runner.run(["ip", "-json", "-details", "link", "show"], input: nil))) ?? []).map(\.name))
        if let taken = devices.first(where: existing.contains) {
            throw Failure(description: "\(taken) exists already (a VLAN in use on this host); the kernel method only checks VIDs without a device: use the default method")
        }
        var lines: [String] = []
        for (position, vlan) in vlans.enumerated() {
            let device = "\(interface).\(vlan)"
            lines += ["link add link \(interface) name \(device) type vlan id \(vlan)", "link set \(device) up",
                      "address add \(Self.address(vlanPosition: position, hostPosition: me))/24 dev \(device)"]
        }
        defer {
            let removal = devices.map { "link del \($0)" }.joined(separator: "\n") + "\n"
            _ = try? runner.run(["ip", "-force", "-batch", "-"], input: Array(removal.utf8))
        }
        do {
            _ = try runner.run(["ip", "-batch", "-"], input: Array((lines.joined(separator: "\n") + "\n").utf8))
        } catch {
            if error.stderr.contains("Unknown device type") || error.stderr.contains("not supported") {
                throw Failure(description: "this kernel has no 802.1Q VLAN devices; use the default method (raw tagged frames, no device needed)")
            }
            throw Failure(description: "cannot create the test VLAN devices: \(error)")
        }
        Thread.sleep(forTimeInterval: listenFirst)
        // Every ping at once (argument lists, no shell); each prints its summary to a file of its own.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-kernel-check-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var started: [(peer: String, vlan: Int, pid: pid_t, file: String)] = []
        for (position, vlan) in vlans.enumerated() {
            for (index, peer) in hosts.enumerated() where index != me {
                let file = "\(directory)/\(index)-\(vlan)"
                // Given a long probe time (5 s or more), the pings wait for late peers up to that time less 2 s
                // for making and removing the devices, so the report is in before the coordinator stops waiting.
                let wait = duration >= 5 ? ["-w", String(Int(duration.rounded(.down)) - 2)] : []
                let ping = ["ping", "-n", "-q", "-c", String(count), "-i", "0.2", "-W", "1"] + wait + ["-I", "\(interface).\(vlan)",
                            Self.address(vlanPosition: position, hostPosition: index)]
                started.append((peer, vlan, try runner.start(ping, output: file), file))
            }
        }
        return started.map { item in
            var status: Int32 = 0
            waitpid(item.pid, &status, 0)
            let text = (try? String(contentsOfFile: item.file, encoding: .utf8)) ?? ""
            let summary = text.split(separator: "\n").first { $0.contains("packets transmitted") } ?? ""
            let numbers = summary.split(separator: " ").compactMap { Int($0) }
            var rtt: [UInt64] = []
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("rtt") }), let values = line.split(separator: "=").last {
                if let average = Double(values.split(separator: "/").dropFirst().first?.trimmingCharacters(in: .whitespaces) ?? "") { rtt = [UInt64(average * 1000)] }
            }
            return VLANVerification.Observation(host: name, peer: item.peer, vlan: item.vlan, sent: numbers.first ?? count,
                                                replies: numbers.count > 1 ? numbers[1] : 0, received: 0, rttMicroseconds: rtt)
        }
    }
}
