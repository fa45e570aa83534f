import Foundation
import Testing
@testable import VNetCore
@testable import VNetLinux

/// Never harm the host, on real kernel objects (a namespace per test, as `LinuxBackendTests.Host` builds it: an
/// operator's br0 holding eth0, with an address). The agent changes only what it made, keeps one object's
/// failure that object's, and refuses a vif that would cut the node off.
@Suite("Host safety of the Linux backend, in network namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct HostSafetyTests {
    typealias Host = LinuxBackendTests.Host
    static func vif(_ number: UInt32, bridge: String = "br0", tap: Bool = true, name: String? = nil) -> HostNetworkState.Vif {
        LinuxBackendTests.vif(number, bridge: bridge, tap: tap, name: name)
    }
    static func node(_ vifs: [HostNetworkState.Vif], requiring: [String] = ["br0"]) -> HostNetworkState { LinuxBackendTests.node(vifs, requiring: requiring) }

    /// An operator's bridge named like vnet's (with a port and an address), a tap named like vnet's, and an extra
    /// address on VNET_BRIDGE: none of them is changed by applies, a restarted agent, or the last instance leaving.
    @Test func theOperatorsObjectsSurviveWhateverTheirNames() throws {
        let host = try Host()
        for command in ["ip link add eucabr5 type bridge", "ip link add op0 type veth peer name op0-peer", "ip link set op0 master eucabr5",
                        "ip link set eucabr5 up", "ip address add 198.51.100.5/24 dev eucabr5", "ip address add 198.51.100.7/24 dev br0",
                        "ip tuntap add dev vn-0000beef mode tap", "ip link set vn-0000beef master br0", "ip link set vn-0000beef up"] {
            try host.sh(command)
        }
        func operatorsObjects() throws -> [String] {
            let links = try host.links()
            return ["eucabr5 \(links["eucabr5"]?.kind ?? "gone") \(links["eucabr5"]?.isUp == true)", "op0 in \(links["op0"]?.master ?? "none")",
                    "vn-0000beef in \(links["vn-0000beef"]?.master ?? "none") \(links["vn-0000beef"]?.isUp == true)",
                    "eth0 in \(links["eth0"]?.master ?? "none")"]
                + (try host.addresses()).filter { $0.hasPrefix("198.51.100.") || $0.hasPrefix("192.0.2.") }
        }
        let before = try operatorsObjects()
        #expect(before == ["eucabr5 bridge true", "op0 in eucabr5", "vn-0000beef in br0 true", "eth0 in br0",
                           "192.0.2.1/24 br0", "198.51.100.5/24 eucabr5", "198.51.100.7/24 br0"])
        let backend = host.backend()
        var report = try backend.apply(Self.node([Self.vif(1), Self.vif(2)]), revision: 1)
        #expect(report.isComplete && report.operations > 0, "\(report)")
        #expect(try operatorsObjects() == before)
        // Again, and as a restarted agent would, and as its reconcile would: nothing of the operator's is drift.
        report = try backend.apply(Self.node([Self.vif(1), Self.vif(2)]), revision: 1)
        #expect(report.operations == 0 && report.drift.isEmpty, "\(report)")
        report = try host.backend().apply(Self.node([Self.vif(1)]), revision: 2)
        #expect(report.isComplete && report.operations == 1, "only vn-00000002 goes: \(report)")
        // The last instance leaves.
        report = try host.backend().apply(Self.node([]), revision: 3)
        #expect(report.isComplete, "\(report)")
        let links = try host.links()
        #expect(links["vn-00000001"] == nil && links["vn-00000002"] == nil, "vnet's own taps are gone")
        #expect(try operatorsObjects() == before)
    }

    /// A desired bridge whose name the operator already uses is a conflict: left as it is, its instances named,
    /// and everything else applied.
    @Test func aDesiredNameTheOperatorUsesIsANamedConflictNotATakeover() throws {
        let host = try Host()
        try host.sh("ip link add eucabr12 type bridge")
        var state = Self.node([Self.vif(1, bridge: "eucabr12"), Self.vif(2)])
        state.bridges = [.init(name: "eucabr12", ports: [])]
        let report = try host.backend().apply(state, revision: 1)
        #expect(report.failures.map(\.kind) == [.conflict, .conflict], "\(report)")
        #expect(report.failures.contains { $0.object == "bridge eucabr12" && $0.error.contains("not vnet's") }, "\(report)")
        #expect(report.failures.contains { $0.object == "vif vn-00000001" && $0.instance == InstanceID(number: 1) }, "\(report)")
        let links = try host.links()
        #expect(links["vn-00000001"] == nil, "nothing made for the conflicting bridge")
        #expect(links["vn-00000002"]?.master == "br0", "the rest of the host is applied")
        #expect(links["eucabr12"]?.isUp == false, "the operator's bridge is untouched (not even set up)")
        // The state without it: the operator's bridge is still not vnet's to delete.
        _ = try host.backend().apply(Self.node([]), revision: 2)
        #expect(try host.links()["eucabr12"] != nil)
    }

    /// 20 hypervisor vifs, one not made yet: the other 19 are attached, the report names the missing one, and it
    /// is attached on the apply after it appears (the agent retries with back-off).
    @Test func oneMissingVifLeavesTheOther19AppliedAndIsAttachedWhenItAppears() throws {
        let host = try Host()
        let vifs = (1...20).map { Self.vif(UInt32($0), tap: false, name: "vm\($0)") }
        for number in 1...20 where number != 7 { try host.sh("ip link add vm\(number) type veth peer name vm\(number)-peer") }
        let backend = host.backend()
        var report = try backend.apply(Self.node(vifs), revision: 1)
        #expect(report.failures == [.init(.missing, object: "vif vm7", instance: InstanceID(number: 7),
                                          error: "not on this host: the hypervisor has not made it yet, or it is gone; attached when it appears")], "\(report)")
        var links = try host.links()
        #expect((1...20).filter { links["vm\($0)"]?.master == "br0" } == (1...20).filter { $0 != 7 })
        try host.sh("ip link add vm7 type veth peer name vm7-peer")
        report = try backend.apply(Self.node(vifs), revision: 1)
        #expect(report.isComplete && report.drift.isEmpty, "attached, and not counted as drift: \(report)")
        links = try host.links()
        #expect(links["vm7"]?.master == "br0")
        // A vif that vanishes (the VM crashed) is that instance's failure again, not the host's.
        try host.sh("ip link del vm3")
        report = try backend.apply(Self.node(vifs), revision: 1)
        #expect(report.failures.map(\.object) == ["vif vm3"], "\(report)")
    }

    /// A command that fails (here: attaching to a bridge that does not exist) is its object's failure; the
    /// other lines of the same `ip -batch` are applied.
    @Test func aFailedCommandIsItsObjectsFailureAndTheBatchGoesOn() throws {
        let host = try Host()
        let report = try host.backend().apply(Self.node([Self.vif(1), Self.vif(2, bridge: "nosuchbr"), Self.vif(3)]), revision: 1)
        #expect(report.failures.count == 1, "\(report)")
        let failure = try #require(report.failures.first)
        #expect(failure.kind == .failed && failure.object == "vif vn-00000002" && failure.instance == InstanceID(number: 2), "\(failure)")
        #expect(failure.error.contains("master nosuchbr"), "\(failure)")
        let links = try host.links()
        #expect(links["vn-00000001"]?.master == "br0" && links["vn-00000003"]?.master == "br0" && links["vn-00000003"]?.isUp == true)
    }

    /// A line the kernel refuses in the middle of the batch (this lane's kernel has no 802.1Q: creating the VLAN
    /// device fails, as it does on a host without the 8021q module): the failure is the VLAN device's, reported
    /// once with the kernel's words; the lines after it (its bridge, the instances) are applied.
    @Test func aLineTheKernelRefusesIsTracedToItsObject() throws {
        let host = try Host()
        var state = HostNetworkState(host: "node1", role: .node, mode: .managed)
        state.requiredLinks = ["eth0"]
        state.vlanDevices = [.init(name: "eth0.12", parent: "eth0", vlan: 12)]
        state.bridges = [.init(name: "eucabr12", ports: ["eth0.12"])]
        state.vifs = [Self.vif(1, bridge: "eucabr12"), Self.vif(2, bridge: "eucabr12")]
        let report = try host.backend().apply(state, revision: 1)
        #expect(report.failures.map(\.object) == ["vlan device eth0.12"], "\(report)")
        #expect(report.failures.first?.error.contains("ip link add link eth0 name eth0.12 type vlan id 12") == true, "\(report)")
        #expect(report.notes.isEmpty, "one batch, not a line at a time: \(report)")
        let links = try host.links()
        #expect(links["eth0.12"] == nil && links["eucabr12"]?.isUp == true)
        #expect(links["vn-00000001"]?.master == "eucabr12" && links["vn-00000002"]?.master == "eucabr12")
    }

    /// A vif that is the node's uplink (a port of VNET_BRIDGE), VNET_BRIDGE itself, loopback, or another bridge
    /// is refused by the agent too (the coordinator may not have known): nothing of it changes, the rest applies.
    @Test func aVifThatWouldCutTheNodeOffIsRefusedAndNothingChanges() throws {
        let host = try Host()
        try host.sh("ip link add opbr type bridge")
        let before = try host.links()
        let state = Self.node([Self.vif(1, tap: false, name: "eth0"), Self.vif(2, tap: false, name: "br0"), Self.vif(3, tap: false, name: "lo"),
                               Self.vif(4, tap: false, name: "opbr"), Self.vif(5)])
        let report = try host.backend().apply(state, revision: 1)
        #expect(report.failures.map(\.kind) == [.refused, .refused, .refused, .refused], "\(report)")
        #expect(Set(report.failures.map(\.object)) == ["vif eth0", "vif br0", "vif lo", "vif opbr"])
        let after = try host.links()
        #expect(after["eth0"]?.master == "br0" && after["eth0"]?.index == before["eth0"]?.index)
        #expect(after["opbr"]?.master == nil && after["lo"]?.master == nil)
        #expect(after["vn-00000005"]?.master == "br0")
        // And the instance leaving changes nothing of them either.
        _ = try host.backend().apply(Self.node([]), revision: 2)
        #expect(try host.links()["eth0"]?.master == "br0")
    }

    /// A front end routing between the groups' networks sends no ICMP redirects and accepts none, checks sources
    /// strictly on those interfaces and answers no ARP for others; settings changed back by hand are drift.
    @Test func aFrontEndTurnsRedirectsOffAndPutsThemBack() throws {
        let host = try Host()
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .managedNoVLAN)
        state.requiredLinks = ["br0"]
        state.addresses = [.init(device: "br0", address: IPv4Address("10.20.0.1")!, prefixLength: 26, broadcast: IPv4Address("10.20.0.63"))]
        let backend = host.backend()
        var report = try backend.apply(state, revision: 1)
        #expect(report.isComplete, "\(report)")
        func value(_ key: String) throws -> String {
            String(decoding: try host.runner.run(["sysctl", "-n", key], input: nil), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try value("net.ipv4.ip_forward") == "1")
        #expect(try value("net.ipv4.conf.all.send_redirects") == "0")
        #expect(try value("net.ipv4.conf.br0.send_redirects") == "0")
        #expect(try value("net.ipv4.conf.br0.accept_redirects") == "0")
        #expect(try value("net.ipv4.conf.br0.rp_filter") == "1")
        #expect(try value("net.ipv4.conf.br0.proxy_arp") == "0")
        #expect(try value("net.ipv4.conf.eth0.send_redirects") == "1", "interfaces that route no group's network are left alone")
        report = try backend.apply(state, revision: 1)
        #expect(report.operations == 0, "written only when different: \(report)")
        try host.sh("sysctl -q -w net.ipv4.conf.br0.send_redirects=1")
        report = try backend.apply(state, revision: 1)
        #expect(report.drift == ["net.ipv4.conf.br0.send_redirects was 1; set 0"], "\(report)")
        #expect(try value("net.ipv4.conf.br0.send_redirects") == "0")
    }
}

/// `ip -force -batch` failure lines traced back to the operation they came from (no root needed).
@Suite("ip batch failure mapping")
struct IPBatchFailureTests {
    @Test func failedLinesAreNumberedWithWhatIpSaid() {
        let stderr = "Cannot find device \"nosuch\"\nCommand failed -:2\nError: either \"dev\" is duplicate, or \"x\" is a garbage.\nCommand failed -:5\n"
        #expect(IPBatch.failedLines(stderr) == [2: "Cannot find device \"nosuch\"", 5: "Error: either \"dev\" is duplicate, or \"x\" is a garbage."])
        #expect(IPBatch.failedLines("") == [:])
    }

    @Test func aTapIsTwoLinesOfOneOperation() throws {
        let operations: [KernelOperation] = [.createBridge("eucabr5"), .createTap(name: "vn-1", mac: MACAddress(0xd00d00000001)), .setUp("vn-1")]
        #expect(try IPBatch.numberedLines(for: operations).map(\.operation) == [0, 1, 1, 2])
    }
}
