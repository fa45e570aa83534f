import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// The Linux backend on real kernel objects, in a namespace of each test's own. The namespace plays a node
/// whose operator made `br0` holding the physical interface `eth0` (a veth here) with an address on br0.
@Suite("Linux backend in network namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct LinuxBackendTests {
    final class Host {
        let namespace: ScratchNamespace
        let runner: ProcessRunner
        let stateFile: String

        init() throws {
            namespace = try ScratchNamespace()
            runner = ProcessRunner(prefix: ["ip", "netns", "exec", namespace.name])
            stateFile = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-linux-\(UUID().uuidString).pb").path
            for command in [["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
                            ["ip", "link", "add", "br0", "type", "bridge"],
                            ["ip", "link", "set", "eth0", "master", "br0"],
                            ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "peer0", "up"], ["ip", "link", "set", "br0", "up"],
                            ["ip", "address", "add", "192.0.2.1/24", "dev", "br0"]] {
                _ = try runner.run(command, input: nil)
            }
        }

        deinit { try? FileManager.default.removeItem(atPath: stateFile) }

        func backend() -> LinuxBackend { LinuxBackend(runner: runner, stateFile: stateFile) }

        func links() throws -> [String: ObservedLink] {
            Dictionary(uniqueKeysWithValues: try LinkObservation.links(fromJSON: try runner.run(["ip", "-json", "-details", "link", "show"], input: nil)).map { ($0.name, $0) })
        }

        func addresses() throws -> [String] {
            try LinkObservation.addresses(fromJSON: try runner.run(["ip", "-json", "address", "show"], input: nil)).map { "\($0.address)/\($0.prefixLength) \($0.device)" }.sorted()
        }

        func sh(_ arguments: String) throws { _ = try runner.run(arguments.split(separator: " ").map(String.init), input: nil) }
    }

    static func vif(_ number: UInt32, bridge: String = "br0", tap: Bool = true, name: String? = nil) -> HostNetworkState.Vif {
        let id = InstanceID(number: number)
        return .init(name: name ?? "vn-" + id.hexDigits, bridge: bridge, mac: MACPrefix.eucalyptusDefault.mac(for: id), instance: id, createTap: tap)
    }

    static func node(_ vifs: [HostNetworkState.Vif], requiring: [String] = ["br0"]) -> HostNetworkState {
        var state = HostNetworkState(host: "node1", role: .node, mode: .managedNoVLAN)
        state.requiredLinks = requiring
        state.vifs = vifs
        return state
    }

    @Test func bringUpIsIdempotentAndLeavesTheOperatorsLinksAlone() throws {
        let host = try Host()
        let backend = host.backend()
        let desired = Self.node([Self.vif(1), Self.vif(2)])
        #expect(try backend.apply(desired, revision: 1) > 0)
        let after = try host.links()
        for vif in desired.vifs {
            let link = try #require(after[vif.name])
            #expect(link.kind == "tun" && link.master == "br0" && link.mac == vif.mac && link.isUp, "\(link)")
        }
        #expect(after["eth0"]?.master == "br0")
        // Again: nothing to do, and nothing recreated.
        #expect(try backend.apply(desired, revision: 1) == 0)
        let again = try host.links()
        for name in ["vn-00000001", "vn-00000002", "br0", "eth0"] { #expect(again[name]?.index == after[name]?.index, "\(name) was recreated") }
        #expect(try host.addresses().contains("192.0.2.1/24 br0"))
        // A new backend (an agent restarted) reading the same host and state file also finds nothing to do.
        #expect(try host.backend().apply(desired, revision: 1) == 0)
    }

    @Test func driftIsRepairedAndReported() throws {
        let host = try Host()
        let backend = host.backend()
        let desired = Self.node([Self.vif(1), Self.vif(2)])
        _ = try backend.apply(desired, revision: 1)
        let before = try host.links()
        try host.sh("ip link set dev vn-00000001 nomaster")
        try host.sh("ip link set dev vn-00000002 down")
        #expect(try backend.apply(desired, revision: 1) == 2)
        #expect(backend.lastDrift.contains("ip link set dev vn-00000001 master br0"), "\(backend.lastDrift)")
        #expect(backend.lastDrift.contains("ip link set dev vn-00000002 up"), "\(backend.lastDrift)")
        let after = try host.links()
        #expect(after["vn-00000001"]?.master == "br0" && after["vn-00000002"]?.isUp == true)
        #expect(after["vn-00000001"]?.index == before["vn-00000001"]?.index, "repaired in place, not recreated")
    }

    @Test func terminatingAnInstanceRemovesOnlyItsTap() throws {
        let host = try Host()
        let backend = host.backend()
        _ = try backend.apply(Self.node([Self.vif(1), Self.vif(2)]), revision: 1)
        let before = try host.links()
        #expect(try backend.apply(Self.node([Self.vif(1)]), revision: 2) == 1)
        let after = try host.links()
        #expect(after["vn-00000002"] == nil)
        #expect(after["vn-00000001"]?.index == before["vn-00000001"]?.index)
        #expect(after["br0"]?.index == before["br0"]?.index && after["eth0"]?.master == "br0")
    }

    @Test func aHypervisorsVifIsAttachedAndLetGoNeverDeleted() throws {
        let host = try Host()
        try host.sh("ip link add vnet0 type veth peer name vnet0-peer")
        let backend = host.backend()
        _ = try backend.apply(Self.node([Self.vif(5, tap: false, name: "vnet0")]), revision: 1)
        #expect(try host.links()["vnet0"]?.master == "br0")
        // Restarted agent (new backend, same state file), instance gone: vnet0 is detached and left to its owner.
        _ = try host.backend().apply(Self.node([]), revision: 2)
        let after = try host.links()
        #expect(after["vnet0"] != nil && after["vnet0"]?.master == nil)
    }

    @Test func ownBridgesComeAndGoWithTheirInstances() throws {
        let host = try Host()
        let backend = host.backend()
        var desired = Self.node([Self.vif(7, bridge: "eucabr5")], requiring: ["eth0"])
        desired.bridges = [.init(name: "eucabr5", ports: [])]
        _ = try backend.apply(desired, revision: 1)
        let links = try host.links()
        #expect(links["eucabr5"]?.kind == "bridge" && links["eucabr5"]?.isUp == true && links["vn-00000007"]?.master == "eucabr5")
        _ = try backend.apply(Self.node([], requiring: ["eth0"]), revision: 2)
        let after = try host.links()
        #expect(after["eucabr5"] == nil && after["vn-00000007"] == nil)
        #expect(after["br0"] != nil && after["eth0"] != nil, "the operator's links stay")
    }

    @Test func addressesAreAddedAndRemovedOnlyWhereOurs() throws {
        let host = try Host()
        let backend = host.backend()
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .managedNoVLAN)
        state.requiredLinks = ["eth0"]
        state.addresses = [.init(device: "eth0", address: IPv4Address("10.20.0.1")!, prefixLength: 26, broadcast: IPv4Address("10.20.0.63")),
                           .init(device: "eth0", address: IPv4Address("203.0.113.10")!, prefixLength: 32, broadcast: nil)]
        #expect(try backend.apply(state, revision: 1) == 3, "two addresses, and forwarding on for a managed front end")
        #expect(try host.addresses().contains("10.20.0.1/26 eth0") && (try host.addresses().contains("203.0.113.10/32 eth0")))
        state.addresses.removeLast()
        #expect(try backend.apply(state, revision: 2) == 1)
        let addresses = try host.addresses()
        #expect(!addresses.contains("203.0.113.10/32 eth0") && addresses.contains("10.20.0.1/26 eth0"))
        #expect(addresses.contains("192.0.2.1/24 br0"), "the operator's address stays")
    }

    @Test func aMissingRequiredLinkChangesNothing() throws {
        let host = try Host()
        let before = try host.links()
        do {
            _ = try host.backend().apply(Self.node([Self.vif(1)], requiring: ["br9"]), revision: 1)
            Issue.record("applied without its required link")
        } catch {
            #expect("\(error)".contains("br9") && "\(error)".contains("nothing was changed"))
        }
        #expect(Set(try host.links().keys) == Set(before.keys))
    }

    /// The front end's firewall on a real netfilter: chains and rules written, a deleted group's chain removed,
    /// a jump deleted by hand put back as drift, the operator's own chain and rule never touched.
    @Test func theFirewallIsAppliedOwnsOnlyItsChainsAndRepairsItsJumps() throws {
        let host = try Host()
        try host.sh("iptables -w -N operator-chain")
        try host.sh("iptables -w -A FORWARD -s 198.51.100.7/32 -j operator-chain")
        let layout = NetworkLayout(subnet: IPv4Network("10.20.0.0/16")!, addressesPerNetwork: 64)
        func chain(_ name: String, _ index: Int) -> FirewallConfig.GroupChain {
            let id = GroupID(user: "admin", name: name)
            return .init(group: id, chain: ChainName.forGroup(id), network: layout.network(index),
                         rules: [.init(source: IPv4Network("0.0.0.0/0")!, traffic: .tcp(22...22))])
        }
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .managedNoVLAN)
        state.requiredLinks = ["eth0"]
        state.firewall = FirewallConfig(subnet: layout.subnet, groups: [chain("web", 0), chain("db", 1)],
                                        publicMappings: [.init(publicAddress: IPv4Address("203.0.113.10")!, privateAddress: IPv4Address("10.20.0.2")!)],
                                        metadataTarget: nil)
        let backend = host.backend()
        func forwarding() throws -> String {
            String(decoding: try host.runner.run(["sysctl", "-n", "net.ipv4.ip_forward"], input: nil), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try forwarding() == "0", "a new namespace starts without forwarding")
        #expect(try backend.apply(state, revision: 1) == 3, "forwarding on, then both tables")
        #expect(try forwarding() == "1")
        func save(_ table: String) throws -> String { String(decoding: try host.runner.run(["iptables-save", "-t", table], input: nil), as: UTF8.self) }
        var filter = try save("filter")
        #expect(filter.contains("-A vn-admin-web -d 10.20.0.0/26 -p tcp -m tcp --dport 22 -j ACCEPT") && filter.contains(":vn-admin-db"))
        #expect(filter.contains("-A FORWARD -j VNET-FORWARD") && filter.contains(":FORWARD DROP"))
        #expect(try save("nat").contains("-A VNET-PREROUTING -d 203.0.113.10/32 -j DNAT --to-destination 10.20.0.2"))
        #expect(try backend.apply(state, revision: 1) == 0, "nothing to do the second time")

        // A group deleted: its chain goes, in the same transaction that stops jumping to it.
        state.firewall!.groups = [chain("web", 0)]
        _ = try backend.apply(state, revision: 2)
        filter = try save("filter")
        #expect(!filter.contains("vn-admin-db") && filter.contains(":vn-admin-web"))

        // Forwarding turned off by hand is drift too.
        try host.sh("sysctl -q -w net.ipv4.ip_forward=0")
        #expect(try backend.apply(state, revision: 2) == 1)
        #expect(backend.lastDrift.contains("net.ipv4.ip_forward was off; turned it on"))
        #expect(try forwarding() == "1")
        // A jump deleted by hand is drift, put back once.
        try host.sh("iptables -w -D FORWARD -j VNET-FORWARD")
        #expect(try backend.apply(state, revision: 2) == 1)
        #expect(backend.lastDrift.contains { $0.contains("-I FORWARD 1 -j VNET-FORWARD") })
        filter = try save("filter")
        #expect(filter.components(separatedBy: "-A FORWARD -j VNET-FORWARD").count == 2, "exactly one jump")
        #expect(filter.contains(":operator-chain") && filter.contains("-A FORWARD -s 198.51.100.7/32 -j operator-chain"), "the operator's rules stay")

        // No firewall wanted any more: ours is gone, the operator's stays.
        state.firewall = nil
        _ = try backend.apply(state, revision: 3)
        filter = try save("filter")
        #expect(!filter.contains("VNET-FORWARD") && !filter.contains("vn-admin"))
        #expect(!(try save("nat")).contains("VNET-"))
        #expect(filter.contains("-A FORWARD -s 198.51.100.7/32 -j operator-chain"))
    }

    @Test func stateNeedingDhcpdIsRefusedWholeWithoutDhcpdSettings() throws {
        let host = try Host()
        var state = Self.node([Self.vif(1)])
        state.dhcpd = DHCPDConfig(sharedNetwork: true, subnets: [], hosts: [], interfaces: ["br0"])
        #expect(throws: LinuxBackend.Failure.self) { try host.backend().apply(state, revision: 1) }
        #expect(try host.links()["vn-00000001"] == nil, "nothing half-applied")
    }
}
