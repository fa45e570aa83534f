import Testing
@testable import VNetCore

/// The pure rules behind host safety: which links may be a vif, the allocator refusing the others, what a
/// routing front end's kernel must be set to, and how failures reach diagnose.
@Suite("Host safety rules")
struct HostSafetyRulesTests {
    static func link(_ name: String, _ kind: String?, master: String? = nil) -> HostLink {
        HostLink(name: name, kind: kind, master: master, isUp: true, vnetOwned: false)
    }

    @Test(arguments: [
        ("lo", nil as HostLink?, "loopback"),
        ("eth0", nil, "VNET_INTERFACE"),
        ("br0", nil, "VNET_BRIDGE"),
        ("eucabr12", nil, "vnet's instance bridges"),
        ("virbr0", link("virbr0", "bridge"), "is a bridge"),
        ("eth1", link("eth1", nil, master: "br0"), "a port of the node's VNET_BRIDGE"),
        ("eth2", link("eth2", nil), "a network device of the node"),
        ("bond0", link("bond0", "bond"), "a bond device"),
        ("eth0.100", link("eth0.100", "vlan"), "a vlan device"),
    ])
    func refused(_ name: String, _ link: HostLink?, _ reason: String) {
        let refusal = VifRules.refusal(name, interface: "eth0", bridge: "br0", link: link)
        #expect(refusal?.contains(reason) == true, "\(name): \(refusal ?? "allowed")")
    }

    @Test(arguments: [
        ("vnet3", Self.link("vnet3", "tun", master: "br0")),   // libvirt's tap, already in VNET_BRIDGE
        ("veth9", Self.link("veth9", "veth")),
        ("vif4.0", Self.link("vif4.0", nil)),                 // Xen's netback vif has no kind
        ("vnet7", nil),                                     // not made yet: waited for
    ])
    func allowed(_ name: String, _ link: HostLink?) {
        #expect(VifRules.refusal(name, interface: "eth0", bridge: "br0", link: link) == nil)
    }

    @Test func theAllocatorRefusesAVifThatWouldCutTheNodeOffAndChangesNothing() throws {
        let config = try #require(ConfigValidator.validate(text: "VNET_MODE=\"SYSTEM\"\n", role: .frontend).config)
        var allocator = try Allocator(config: config, state: ClusterState(frontend: "fe"))
        try allocator.registerNode(.init(name: "n1", interface: "eth0", bridge: "br0"))
        let before = allocator.state
        for (vif, links) in [("eth0", [HostLink]()), ("br0", []), ("lo", []), ("virbr0", [Self.link("virbr0", "bridge")])] {
            #expect(throws: ClusterError.self, "\(vif)") { try allocator.runInstance(InstanceID(number: 1), on: "n1", hypervisorVif: vif, nodeLinks: links) }
        }
        do { try allocator.runInstance(InstanceID(number: 1), on: "n1", hypervisorVif: "eth0") } catch {
            #expect(error.description.contains("refused: eth0 is the node's VNET_INTERFACE"), "\(error)")
        }
        #expect(allocator.state == before)
        try allocator.runInstance(InstanceID(number: 1), on: "n1", hypervisorVif: "vnet0", nodeLinks: [Self.link("vnet0", "tun")])
        #expect(allocator.state.instances[InstanceID(number: 1)]?.hypervisorVif == "vnet0")
    }

    @Test func aRoutingFrontEndsSettingsCoverEveryGroupInterface() {
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .managed)
        state.addresses = [.init(device: "eth0.10", address: IPv4Address(10, 20, 0, 1), prefixLength: 26, broadcast: nil),
                           .init(device: "eth0.11", address: IPv4Address(10, 20, 0, 65), prefixLength: 26, broadcast: nil),
                           .init(device: "eth1", address: IPv4Address(203, 0, 113, 10), prefixLength: 32, broadcast: nil)]
        let settings = RouterSysctls.settings(for: state).map(\.description)
        #expect(settings.contains("net.ipv4.ip_forward=1") && settings.contains("net.ipv4.conf.all.send_redirects=0"))
        for device in ["eth0/10", "eth0/11"] {
            for setting in ["send_redirects=0", "accept_redirects=0", "rp_filter=1", "proxy_arp=0"] {
                #expect(settings.contains("net.ipv4.conf.\(device).\(setting)"), "\(device) \(setting): \(settings)")
            }
        }
        #expect(!settings.contains { $0.contains("eth1") }, "a public /32 is no routed instance network")
        #expect(RouterSysctls.Setting("net/ipv4/conf/eth0.10/rp_filter", "1").dotted == "net.ipv4.conf.eth0/10.rp_filter")
        var node = state
        node.role = .node
        #expect(RouterSysctls.settings(for: node).isEmpty)
        var staticFrontEnd = state
        staticFrontEnd.mode = .staticMode
        #expect(RouterSysctls.settings(for: staticFrontEnd).isEmpty, "STATIC's front end routes nothing (VNET_ROUTER does)")
    }

    @Test func whatIsNotAppliedIsADiagnoseFinding() {
        let host = ClusterFindings.Host(name: "n3", state: .up, desiredRevision: 7, appliedRevision: 7, answered: true,
                                        notApplied: ["vif vnet3 (i-00000003): missing: not on this host"])
        #expect(ClusterFindings.findings([host]).map(\.text) == ["n3 applied revision 7 except vif vnet3 (i-00000003): missing: not on this host"])
    }

    @Test func failureLinesAreSortedAndStable() {
        let report = ApplyReport(failures: [.init(.failed, object: "dhcpd", error: "b"), .init(.missing, object: "vif a", instance: InstanceID(number: 1), error: "x")])
        #expect(report.failureLines == ["dhcpd: failed: b", "vif a (i-00000001): missing: x"])
        #expect(!report.isComplete && ApplyReport().isComplete)
    }
}
