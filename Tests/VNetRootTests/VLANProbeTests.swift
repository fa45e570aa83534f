import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// The VLAN prober on real packet sockets: four hosts on a switch namespace (a plain bridge, which forwards
/// tagged frames untouched: a VLAN-clean switch), each running `vnet-agent probe` at the same time; a dirty port
/// emulated with an nftables bridge rule. The hosts' observations are judged together as the coordinator will.
@Suite("VLAN probes on raw sockets", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct VLANProbeTests {
    final class Switch {
        let switchNS: ScratchNamespace
        var hosts: [String: ScratchNamespace] = [:]
        var macs: [String: String] = [:]
        let names = ["h1", "h2", "h3", "h4"]

        init() throws {
            switchNS = try ScratchNamespace()
            try sh(switchNS, "ip link add sw type bridge")
            try sh(switchNS, "ip link set sw up")
            for name in names {
                let host = try ScratchNamespace()
                hosts[name] = host
                try sh(switchNS, "ip link add p-\(name) type veth peer name eth0 netns \(host.name)")
                try sh(switchNS, "ip link set p-\(name) master sw up")
                try sh(host, "ip link set eth0 up")
                macs[name] = try LinkObservation.links(fromJSON: try runner(host).run(["ip", "-json", "-details", "link", "show", "eth0"], input: nil)).first?.mac?.description
            }
            try sh(switchNS, "nft add table bridge vnettest")
            try sh(switchNS, "nft add chain bridge vnettest portfilter { type filter hook forward priority 0 ; }")
        }

        func runner(_ namespace: ScratchNamespace) -> ProcessRunner { ProcessRunner(prefix: ["ip", "netns", "exec", namespace.name]) }
        func sh(_ namespace: ScratchNamespace, _ command: String) throws { _ = try runner(namespace).run(command.split(separator: " ").map(String.init), input: nil) }

        /// A dirty port: an nft rule on the switch (flushed by `clean`).
        func rule(_ text: String) throws { _ = try runner(switchNS).run(["nft", "add rule bridge vnettest portfilter " + text], input: nil) }
        func clean() throws { try sh(switchNS, "nft flush chain bridge vnettest portfilter") }

        /// Every host probes every other at once; the judged result.
        func verify(vlans: [Int], down: Set<String> = []) throws -> VLANVerification.Result {
            let agent = NamespaceFixtures.binaries.appendingPathComponent("vnet-agent").path
            let peers = names.filter { !down.contains($0) }.flatMap { ["--peer", "\($0)=\(macs[$0]!)"] }
            let participants = names.filter { !down.contains($0) }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-probe-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // All at once, as the coordinator starts them: each keeps answering while the others probe.
            let started = try participants.map { name in
                try runner(hosts[name]!).start([agent, "probe", "--interface", "eth0", "--name", name, "--vlans", vlans.map(String.init).joined(separator: ","),
                                                "--duration", "1.5", "--json"] + peers, output: "\(directory)/\(name).json")
            }
            for pid in started { var status: Int32 = 0; waitpid(pid, &status, 0) }
            let outputs = try participants.map { try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\($0).json")) }
            struct Report: Decodable { var observations: [VLANVerification.Observation] }
            let observations = try outputs.flatMap { try JSONDecoder().decode(Report.self, from: $0).observations }
            return VLANVerification.judge(hosts: names, vlans: vlans, observations: observations, unreachable: down)
        }
    }

    func statuses(_ result: VLANVerification.Result, vlan: Int) -> [String: String] {
        Dictionary(uniqueKeysWithValues: result.pairs.filter { $0.vlan == vlan }.map { ("\($0.a)-\($0.b)", $0.status.description) })
    }

    @Test func cleanDirtyOneWayAndDown() throws {
        let lab = try Switch()
        // A clean switch: every pair OK on every VID, and untagged.
        var result = try lab.verify(vlans: [10, 20])
        #expect(result.allOK, "\(result.pairs.filter { !$0.status.isOK })")
        #expect(result.pairs.count == 18 && result.pairs.allSatisfy { $0.rttP50Microseconds != nil })

        // Tagged frames dropped on h3's port: exactly the pairs with h3 fail on tagged VIDs, untagged passes, h3 named.
        try lab.rule("iifname p-h3 ether type 8021q drop")
        try lab.rule("oifname p-h3 ether type 8021q drop")
        result = try lab.verify(vlans: [10, 20])
        for vlan in [10, 20] {
            for (pair, status) in statuses(result, vlan: vlan) { #expect((status == "FAILED") == pair.contains("h3"), "vlan \(vlan) \(pair): \(status)") }
            #expect(result.culprits[vlan] == "h3")
        }
        #expect(statuses(result, vlan: 0).values.allSatisfy { $0 == "OK" }, "the untagged control passes")
        #expect(result.noLink.isEmpty)

        // Only VID 10 dropped: only VID 10 fails.
        try lab.clean()
        try lab.rule("iifname p-h3 vlan id 10 drop")
        try lab.rule("oifname p-h3 vlan id 10 drop")
        result = try lab.verify(vlans: [10, 20])
        #expect(result.culprits == [10: "h3"])
        #expect(statuses(result, vlan: 20).values.allSatisfy { $0 == "OK" })

        // Ingress only (frames from h3 dropped): one-way, towards h3. Egress only: one-way, from h3.
        try lab.clean()
        try lab.rule("iifname p-h3 vlan id 10 drop")
        result = try lab.verify(vlans: [10])
        #expect(statuses(result, vlan: 10)["h1-h3"] == "one-way h1->h3", "\(statuses(result, vlan: 10))")
        #expect(statuses(result, vlan: 10)["h3-h4"] == "one-way h4->h3")
        try lab.clean()
        try lab.rule("oifname p-h3 vlan id 10 drop")
        result = try lab.verify(vlans: [10])
        #expect(statuses(result, vlan: 10)["h1-h3"] == "one-way h3->h1", "\(statuses(result, vlan: 10))")

        // A host that is down is unreachable, not a VLAN failure.
        try lab.clean()
        result = try lab.verify(vlans: [10], down: ["h2"])
        #expect(statuses(result, vlan: 10)["h1-h2"] == "unreachable (h2)")
        #expect(statuses(result, vlan: 10)["h1-h3"] == "OK")
        #expect(result.culprits.isEmpty)
    }

    /// A NIC that filters VIDs in hardware (QEMU's virtio-net, many real ones) drops tagged frames of VIDs with no
    /// VLAN device before a packet socket sees them, unless the interface is promiscuous. The probe holds a
    /// promiscuous membership on its socket: on while it runs, gone when it ends, also when it is killed.
    @Test func theProbeHoldsPromiscuousModeOnlyWhileItRuns() throws {
        let lab = try Switch()
        let host = lab.hosts["h1"]!
        func promiscuity() throws -> Int {
            let text = try lab.runner(host).run(["ip", "-json", "-details", "link", "show", "eth0"], input: nil)
            let links = try JSONSerialization.jsonObject(with: Data(text)) as? [[String: Any]]
            return links?.first?["promiscuity"] as? Int ?? -1
        }
        #expect(try promiscuity() == 0)
        let agent = NamespaceFixtures.binaries.appendingPathComponent("vnet-agent").path
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-promisc-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for killed in [false, true] {
            let pid = try lab.runner(host).start([agent, "probe", "--interface", "eth0", "--name", "h1", "--vlans", "10", "--duration", "3",
                                                  "--peer", "h2=\(lab.macs["h2"]!)"], output: "\(directory)/probe.out")
            var seen = 0
            for _ in 0..<40 where seen == 0 { seen = try promiscuity(); if seen == 0 { Thread.sleep(forTimeInterval: 0.05) } }
            #expect(seen == 1, "promiscuous while probing")
            if killed { kill(pid, SIGKILL) }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            #expect(try promiscuity() == 0, killed ? "the kernel takes it back from a killed probe" : "off again when the probe ends")
        }
    }
}
