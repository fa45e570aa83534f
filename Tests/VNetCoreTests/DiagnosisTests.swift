import Testing
@testable import VNetCore

@Suite("diagnosis findings and the tar archive")
struct DiagnosisTests {
    /// A MANAGED node with one group's VLAN 10 and one instance, and a front end with dhcpd and a group chain.
    static var node: HostNetworkState {
        var state = HostNetworkState(host: "n1", role: .node, mode: .managed)
        state.requiredLinks = ["eth0"]
        state.vlanDevices = [.init(name: "eth0.10", parent: "eth0", vlan: 10)]
        state.bridges = [.init(name: "eucabr10", ports: ["eth0.10"])]
        state.vifs = [.init(name: "vn-0000a001", bridge: "eucabr10", mac: MACAddress(0xd0_0d_00_00_a0_01), instance: InstanceID("i-0000a001")!, createTap: true)]
        return state
    }

    static var frontend: HostNetworkState {
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .managed)
        state.vlanDevices = [.init(name: "eth0.10", parent: "eth0", vlan: 10)]
        state.bridges = [.init(name: "eucabr10", ports: ["eth0.10"])]
        state.addresses = [.init(device: "eucabr10", address: IPv4Address(10, 20, 0, 1), prefixLength: 26, broadcast: IPv4Address(10, 20, 0, 63))]
        let network = IPv4Network("10.20.0.0/26")!
        state.dhcpd = DHCPDConfig(sharedNetwork: false, subnets: [.init(network: network, router: IPv4Address(10, 20, 0, 1), broadcast: IPv4Address(10, 20, 0, 63), dns: [])],
                                  hosts: [], interfaces: ["eth0.10", "eucabr10"])
        state.firewall = FirewallConfig(subnet: IPv4Network("10.20.0.0/16")!, groups: [.init(group: GroupID(user: "admin", name: "web"), chain: "vn-admin-web", network: network, rules: [])],
                                        publicMappings: [], metadataTarget: nil)
        return state
    }

    static func healthy(_ state: HostNetworkState) -> HostObservation {
        var observed = HostObservation()
        for name in state.requiredLinks + state.vlanDevices.map(\.name) + state.bridges.map(\.name) { observed.links[name] = .init(isUp: true, master: nil) }
        for bridge in state.bridges { for port in bridge.ports { observed.links[port] = .init(isUp: true, master: bridge.name) } }
        for vif in state.vifs { observed.links[vif.name] = .init(isUp: true, master: vif.bridge) }
        observed.addresses = Set(state.addresses.map { "\($0.device) \($0.cidr)" })
        observed.dhcpdRunning = state.dhcpd == nil ? nil : true
        observed.iptablesChains = ["FORWARD", "VNET-FORWARD", "vn-admin-web"]
        observed.ipForwarding = true
        return observed
    }

    @Test func aHealthyHostHasNothingToSay() {
        #expect(HostFindings.findings(desired: Self.node, observed: Self.healthy(Self.node)) == [])
        #expect(HostFindings.findings(desired: Self.frontend, observed: Self.healthy(Self.frontend)) == [])
    }

    @Test func eachBrokenPieceIsNamed() {
        var node = Self.healthy(Self.node)
        node.links["eucabr10"] = nil
        node.links["eth0.10"]?.master = nil
        #expect(HostFindings.findings(desired: Self.node, observed: node) == ["bridge eucabr10 is missing"],
                "a vif whose bridge is gone is not blamed twice")
        node = Self.healthy(Self.node)
        node.links["eth0.10"] = .init(isUp: false, master: nil)
        node.links["vn-0000a001"] = .init(isUp: true, master: "br0")
        node.links["br0"] = .init(isUp: true, master: nil)
        node.links["eth0"] = nil
        #expect(HostFindings.findings(desired: Self.node, observed: node) == [
            "interface eth0 is missing",
            "802.1Q device (VLAN 10 on eth0) eth0.10 is down",
            "eth0.10 is not a port of bridge eucabr10",
            "instance i-0000a001's vif vn-0000a001 is in br0, not in eucabr10",
        ])
        var frontend = Self.healthy(Self.frontend)
        frontend.dhcpdRunning = false
        frontend.iptablesChains = ["FORWARD"]
        frontend.addresses = []
        frontend.ipForwarding = false
        #expect(HostFindings.findings(desired: Self.frontend, observed: frontend) == [
            "address 10.20.0.1/26 is missing from eucabr10",
            "dhcpd is not running (it should serve eth0.10 (VLAN 10), eucabr10)",
            "security group admin/web's chain vn-admin-web is missing from iptables",
            "vnet's chain VNET-FORWARD is missing from iptables",
            "net.ipv4.ip_forward is 0: the front end does not route between the groups' networks",
        ])
    }

    @Test func chainsAreReadFromIPTablesSave() {
        let text = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:VNET-FORWARD - [0:0]\n-A FORWARD -j VNET-FORWARD\nCOMMIT\n*nat\n:VNET-OUTPUT - [0:0]\nCOMMIT\n"
        #expect(HostFindings.chains(inIPTablesSave: text) == ["INPUT", "VNET-FORWARD", "VNET-OUTPUT"])
    }

    @Test func clusterFindingsNameHostsDownBehindOrSilent() {
        let found = ClusterFindings.findings([
            .init(name: "fe", state: .up, desiredRevision: 5, appliedRevision: 5, answered: true),
            .init(name: "n1", state: .down, desiredRevision: 5, appliedRevision: 3, answered: false),
            .init(name: "n2", state: .up, desiredRevision: 5, appliedRevision: 5, answered: false),
            .init(name: "n3", state: .new, desiredRevision: 0, appliedRevision: 0, answered: false),
        ]).map { "\($0.host): \($0.text)" }
        #expect(found == [
            "n1: n1 is DOWN",
            "n1: n1 is behind: applied revision 3, desired 5",
            "n2: n2 did not answer the diagnosis in time",
            "n3: n3 has never been heard from (is its agent running?)",
        ])
    }

    @Test func tarHeadersAreUstarWithValidChecksumsAndPaddedContent() throws {
        let long = String(repeating: "d", count: 90) + "/" + String(repeating: "f", count: 60) + ".txt"
        let bytes = try TarArchive.archive([.init(path: "a/b.txt", content: Array("hello".utf8)), .init(path: long, content: [])], modified: 1_700_000_000)
        #expect(bytes.count == 512 + 512 + 512 + 1024)
        let header = Array(bytes[0..<512])
        #expect(String(decoding: header[0..<7], as: UTF8.self) == "a/b.txt")
        #expect(String(decoding: header[257..<262], as: UTF8.self) == "ustar")
        #expect(String(decoding: header[124..<135], as: UTF8.self) == "00000000005")
        var blank = header
        for index in 148..<156 { blank[index] = UInt8(ascii: " ") }
        let stored = Int(String(decoding: header[148..<154], as: UTF8.self), radix: 8)
        #expect(stored == blank.reduce(0) { $0 + Int($1) })
        #expect(String(decoding: bytes[512..<517], as: UTF8.self) == "hello" && bytes[517..<1024].allSatisfy { $0 == 0 })
        let second = Array(bytes[1024..<1536])
        #expect(String(decoding: second[345..<435], as: UTF8.self) == String(repeating: "d", count: 90), "a long path is split into prefix and name")
        #expect(throws: TarArchive.Failure.pathTooLong(String(repeating: "x", count: 120))) {
            _ = try TarArchive.archive([.init(path: String(repeating: "x", count: 120), content: [])], modified: 0)
        }
    }
}

@Suite("diagnosis summary")
struct DiagnosisSummaryTests {
    @Test func findingsAreListedHostByHostWithoutControlCharacters() {
        #expect(DiagnosisSummary.text(headline: "h", findings: []) == "h\nnothing looks wrong\n")
        #expect(DiagnosisSummary.text(headline: "h", findings: [("n1", "bridge br0 is missing"), ("n\u{1b}[31m2", "x\ny")])
                == "h\nwhat looks wrong:\n  n1: bridge br0 is missing\n  n?[31m2: x?y\n")
    }

    @Test func namesFromElsewhereBecomeOnePathComponent() {
        #expect(DiagnosisSummary.safeName("ip-link.txt") == "ip-link.txt")
        #expect(DiagnosisSummary.safeName("../../etc/passwd") == "_._.._etc_passwd")
        #expect(DiagnosisSummary.safeName("") == "_")
        #expect(DiagnosisSummary.safeName(String(repeating: "a", count: 100)).count == 64)
    }
}
