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

        deinit {
            for file in [stateFile, stateFile + ".iptables.json", stateFile + ".preload", stateFile + ".owned.json"] { try? FileManager.default.removeItem(atPath: file) }
        }

        /// A backend as vnet-agent makes one for this host: VNET_INTERFACE eth0, VNET_BRIDGE br0.
        func backend(preload: String? = nil) -> LinuxBackend {
            LinuxBackend(runner: runner, stateFile: stateFile, preloadPath: preload, interface: "eth0", bridge: "br0")
        }
        /// The table as iptables-save prints it, without its comment lines (they carry the time of the save).
        func save(_ table: String) throws -> String {
            String(decoding: try runner.run(["iptables-save", "-t", table], input: nil), as: UTF8.self)
                .split(separator: "\n").filter { !$0.hasPrefix("#") }.joined(separator: "\n")
        }

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
        #expect(try backend.apply(desired, revision: 1).operations > 0)
        let after = try host.links()
        for vif in desired.vifs {
            let link = try #require(after[vif.name])
            // The tap (the bridge's port) never carries the guest's own MAC: the bridge would take it as local.
            #expect(link.kind == "tun" && link.master == "br0" && link.mac == vif.mac.tapHostSide && link.isUp, "\(link)")
            #expect(link.mac?.description.hasPrefix("fe:") == true && link.mac != vif.mac, "\(link)")
        }
        #expect(after["eth0"]?.master == "br0")
        // Again: nothing to do, and nothing recreated.
        #expect(try backend.apply(desired, revision: 1).operations == 0)
        let again = try host.links()
        for name in ["vn-00000001", "vn-00000002", "br0", "eth0"] { #expect(again[name]?.index == after[name]?.index, "\(name) was recreated") }
        #expect(try host.addresses().contains("192.0.2.1/24 br0"))
        // A new backend (an agent restarted) reading the same host and state file also finds nothing to do.
        #expect(try host.backend().apply(desired, revision: 1).operations == 0)
    }

    @Test func driftIsRepairedAndReported() throws {
        let host = try Host()
        let backend = host.backend()
        let desired = Self.node([Self.vif(1), Self.vif(2)])
        _ = try backend.apply(desired, revision: 1)
        let before = try host.links()
        try host.sh("ip link set dev vn-00000001 nomaster")
        try host.sh("ip link set dev vn-00000002 down")
        let report = try backend.apply(desired, revision: 1)
        #expect(report.operations == 2)
        #expect(report.drift.contains("ip link set dev vn-00000001 master br0"), "\(report.drift)")
        #expect(report.drift.contains("ip link set dev vn-00000002 up"), "\(report.drift)")
        let after = try host.links()
        #expect(after["vn-00000001"]?.master == "br0" && after["vn-00000002"]?.isUp == true)
        #expect(after["vn-00000001"]?.index == before["vn-00000001"]?.index, "repaired in place, not recreated")
    }

    @Test func aTapCarryingTheGuestsMACIsMadeAgainWithItsHostSideMAC() throws {
        let host = try Host()
        // As agents before the fix made them: the tap (a bridge port) with the guest's own MAC, and (older still)
        // no ownership record, only the applied state: what that state lists is taken as the agent's.
        let vif = Self.vif(3)
        _ = try host.backend().apply(Self.node([vif]), revision: 1)
        try FileManager.default.removeItem(atPath: host.stateFile + ".owned.json")
        try host.sh("ip link set dev \(vif.name) address \(vif.mac)")
        let backend = host.backend()
        _ = try backend.apply(Self.node([vif]), revision: 1)
        let link = try #require(try host.links()[vif.name])
        #expect(link.mac == vif.mac.tapHostSide && link.master == "br0" && link.isUp, "\(link)")
        #expect(try backend.apply(Self.node([vif]), revision: 1).operations == 0, "then left alone")
    }

    @Test func terminatingAnInstanceRemovesOnlyItsTap() throws {
        let host = try Host()
        let backend = host.backend()
        _ = try backend.apply(Self.node([Self.vif(1), Self.vif(2)]), revision: 1)
        let before = try host.links()
        #expect(try backend.apply(Self.node([Self.vif(1)]), revision: 2).operations == 1)
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
        // Its host-side MAC is its own (the instance's is inside the guest): attached once, then left alone.
        #expect(try host.links()["vnet0"]?.mac != Self.vif(5, tap: false, name: "vnet0").mac)
        #expect(try backend.apply(Self.node([Self.vif(5, tap: false, name: "vnet0")]), revision: 1).operations == 0)
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
        #expect(try backend.apply(state, revision: 1).operations == 3, "two addresses, and forwarding on for a managed front end")
        #expect(try host.addresses().contains("10.20.0.1/26 eth0") && (try host.addresses().contains("203.0.113.10/32 eth0")))
        state.addresses.removeLast()
        #expect(try backend.apply(state, revision: 2).operations == 1)
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
    /// rules of vnet's chains, its jumps and FORWARD's policy changed by hand put back as drift, the operator's own
    /// chain and rules never touched.
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
        #expect(try backend.apply(state, revision: 1).operations == 3, "forwarding on, then both tables")
        #expect(try forwarding() == "1")
        func save(_ table: String) throws -> String { try host.save(table) }
        var filter = try save("filter")
        #expect(filter.contains("-A vn-admin-web -d 10.20.0.0/26 -p tcp -m tcp --dport 22 -j ACCEPT") && filter.contains(":vn-admin-db"))
        #expect(filter.contains("-A FORWARD -j VNET-FORWARD") && filter.contains(":FORWARD DROP"))
        #expect(try save("nat").contains("-A VNET-PREROUTING -d 203.0.113.10/32 -j DNAT --to-destination 10.20.0.2"))
        #expect(try backend.apply(state, revision: 1).operations == 0, "nothing to do the second time")

        // A group deleted: its chain goes, in the same transaction that stops jumping to it.
        state.firewall!.groups = [chain("web", 0)]
        _ = try backend.apply(state, revision: 2)
        filter = try save("filter")
        #expect(!filter.contains("vn-admin-db") && filter.contains(":vn-admin-web"))

        // Forwarding turned off by hand is drift too.
        try host.sh("sysctl -q -w net.ipv4.ip_forward=0")
        let report = try backend.apply(state, revision: 2)
        #expect(report.operations == 1)
        #expect(report.drift.contains("net.ipv4.ip_forward was 0; set 1"), "\(report.drift)")
        #expect(try forwarding() == "1")
        // Anything changed by hand in vnet's part of the tables is drift, repaired by rewriting vnet's chains:
        // a jump deleted, a rule deleted, a rule added, FORWARD's policy changed.
        let rules = backend.iptablesRules
        // filter: 5 in VNET-FORWARD, 1 in the group's chain, 1 jump; nat: DNAT twice, SNAT, MASQUERADE, 3 jumps.
        #expect(rules == 14, "the inventory's rule count: \(rules)")
        for (change, expected) in [("iptables -w -D FORWARD -j VNET-FORWARD", "missing (filter -A FORWARD -j VNET-FORWARD)"),
                                   ("iptables -w -D vn-admin-web 1", "missing (filter -A vn-admin-web -d 10.20.0.0/26 -p tcp -m tcp --dport 22 -j ACCEPT)"),
                                   ("iptables -w -I VNET-FORWARD 1 -j ACCEPT", "1 unexpected lines in vnet's chains (filter -A VNET-FORWARD -j ACCEPT)"),
                                   ("iptables -w -t nat -F VNET-POSTROUTING", "of vnet's iptables lines missing (nat -A VNET-POSTROUTING"),
                                   ("iptables -w -P FORWARD ACCEPT", "(filter :FORWARD DROP)")] {
            try host.sh(change)
            let report = try backend.apply(state, revision: 2)
            #expect(report.operations == 2, "\(change)")
            #expect(report.drift.contains { $0.contains(expected) && $0.hasSuffix("rewrote vnet's chains") }, "\(change): \(report.drift)")
            #expect(try backend.apply(state, revision: 2).operations == 0, "repaired once: \(change)")
            #expect(backend.iptablesRules == rules)
        }
        filter = try save("filter")
        #expect(filter.components(separatedBy: "-A FORWARD -j VNET-FORWARD").count == 2, "exactly one jump")
        #expect(filter.contains(":FORWARD DROP") && !filter.contains("-A VNET-FORWARD -j ACCEPT"))
        #expect(filter.contains(":operator-chain") && filter.contains("-A FORWARD -s 198.51.100.7/32 -j operator-chain"), "the operator's rules stay")
        // The operator adding a rule of their own to a built-in chain is not vnet's business.
        try host.sh("iptables -w -A FORWARD -s 198.51.100.8/32 -j ACCEPT")
        #expect(try backend.apply(state, revision: 2).operations == 0)
        // A restarted agent compares with what it wrote before: nothing is rewritten.
        #expect(try host.backend().apply(state, revision: 2).operations == 0)

        // No firewall wanted any more: ours is gone, the operator's stays.
        state.firewall = nil
        _ = try backend.apply(state, revision: 3)
        filter = try save("filter")
        #expect(!filter.contains("VNET-FORWARD") && !filter.contains("vn-admin"))
        #expect(!(try save("nat")).contains("VNET-"))
        #expect(filter.contains("-A FORWARD -s 198.51.100.7/32 -j operator-chain"))
    }

    static let firewallLayout = NetworkLayout(subnet: IPv4Network("10.20.0.0/16")!, addressesPerNetwork: 64)

    /// Group g<index> of user admin: `rules` rules from 198.51.100.0, .1, ... to tcp `port`, on network `index`.
    static func groupChain(_ index: Int, rules: Int = 5, port: Int = 22) -> FirewallConfig.GroupChain {
        let id = GroupID(user: "admin", name: "g\(index)")
        return .init(group: id, chain: ChainName.forGroup(id), network: firewallLayout.network(index),
                     rules: (0..<rules).map { .init(source: IPv4Network(address: IPv4Address(UInt32(0xC633_6400) + UInt32($0)), prefixLength: 32)!, traffic: .tcp(port...port)) })
    }

    /// A MANAGED-NOVLAN front end on eth0 whose firewall holds groups g0 ... g<groups - 1>.
    static func frontEnd(groups: Int) -> HostNetworkState {
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .managedNoVLAN)
        state.requiredLinks = ["eth0"]
        state.firewall = FirewallConfig(subnet: firewallLayout.subnet, groups: (0..<groups).map { groupChain($0) }, publicMappings: [], metadataTarget: nil)
        return state
    }

    /// Every command a backend runs, with what it was given on stdin, passed on to the real runner.
    final class RecordingRunner: CommandRunner, @unchecked Sendable {
        let inner: ProcessRunner
        private let lock = NSLock()
        private var log: [(arguments: [String], input: String)] = []
        init(_ inner: ProcessRunner) { self.inner = inner }
        var kernel: KernelNamespace { inner.kernel }
        func run(_ arguments: [String], input: [UInt8]?) throws(CommandError) -> [UInt8] {
            lock.lock(); log.append((arguments, input.map { String(decoding: $0, as: UTF8.self) } ?? "")); lock.unlock()
            return try inner.run(arguments, input: input)
        }
        /// The calls since the last `take`.
        func take() -> [(arguments: [String], input: String)] { lock.lock(); defer { log = []; lock.unlock() }; return log }
    }

    /// A change to the firewall writes only the chains that differ and reads back only those: the cost of a
    /// change is the change's, not the table's. On real netfilter, with the commands counted.
    @Test func aFirewallChangeWritesAndReadsOnlyTheChainsThatChanged() throws {
        let host = try Host()
        var state = Self.frontEnd(groups: 40)
        let runner = RecordingRunner(host.runner)
        let backend = LinuxBackend(runner: runner, stateFile: host.stateFile, interface: "eth0", bridge: "br0")
        _ = try backend.apply(state, revision: 1)
        _ = runner.take()
        func restores(_ calls: [(arguments: [String], input: String)]) -> [[String]] {
            calls.filter { $0.arguments.first == "iptables-restore" }.map { call in
                call.input.split(separator: "\n").filter { $0.hasPrefix(":") && !$0.hasPrefix(":FORWARD ") }.map { String($0.dropFirst().split(separator: " ")[0]) }
            }
        }
        func edits(_ calls: [(arguments: [String], input: String)]) -> [String] {
            calls.filter { $0.arguments.first == "iptables-restore" }.flatMap { $0.input.split(separator: "\n").filter { $0.hasPrefix("-I ") || $0.hasPrefix("-D ") }.map(String.init) }
        }
        func readsWholeTables(_ calls: [(arguments: [String], input: String)]) -> Bool {
            calls.contains { $0.arguments.first == "iptables-save" || ($0.arguments.contains("-S") && $0.arguments.last == "-S") }
        }

        // A group added: the new chain declared, and VNET-FORWARD edited (its two rules for the group inserted,
        // not the chain flushed and refilled), in one filter transaction; nat untouched.
        state.firewall!.groups.append(Self.groupChain(40))
        #expect(try backend.apply(state, revision: 2).isComplete)
        var calls = runner.take()
        #expect(restores(calls) == [[ChainName.forGroup(GroupID(user: "admin", name: "g40"))]], "\(restores(calls))")
        #expect(edits(calls) == ["-I VNET-FORWARD 82 -s 10.20.10.0/26 -d 10.20.10.0/26 -j ACCEPT", "-I VNET-FORWARD 83 -d 10.20.10.0/26 -j vn-admin-g40"], "\(edits(calls))")
        #expect(!readsWholeTables(calls), "\(calls.map(\.arguments))")
        let filter = try host.save("filter")
        #expect(filter.contains("-A VNET-FORWARD -d 10.20.10.0/26 -j vn-admin-g40") && filter.contains("-A vn-admin-g40 -s 198.51.100.4/32 -d 10.20.10.0/26 -p tcp -m tcp --dport 22 -j ACCEPT"))
        // What was read back after the change is what iptables-save prints: an agent started again (which
        // reads the whole firewall once, knowing no generation) finds no drift.
        let pass = try host.backend().apply(state, revision: 2)
        #expect(pass.operations == 0 && pass.drift.isEmpty, "\(pass.drift)")
        _ = runner.take()

        // One group's rules changed: that chain alone.
        state.firewall!.groups[7] = Self.groupChain(7, port: 2222)
        _ = try backend.apply(state, revision: 3)
        calls = runner.take()
        #expect(restores(calls) == [[ChainName.forGroup(GroupID(user: "admin", name: "g7"))]], "\(restores(calls))")
        #expect(try host.save("filter").contains("-A vn-admin-g7 -s 198.51.100.0/32 -d 10.20.1.192/26 -p tcp -m tcp --dport 2222 -j ACCEPT"))

        // A public address: the nat chains alone.
        state.firewall!.publicMappings = [.init(publicAddress: IPv4Address("203.0.113.10")!, privateAddress: IPv4Address("10.20.0.2")!)]
        _ = try backend.apply(state, revision: 4)
        calls = runner.take()
        #expect(restores(calls) == [[ChainName.preRouting, ChainName.output]], "\(restores(calls))")
        #expect(edits(calls) == ["-I VNET-POSTROUTING 1 -s 10.20.0.2/32 ! -d 10.20.0.0/16 -j SNAT --to-source 203.0.113.10"], "\(edits(calls))")
        #expect(try host.save("nat").contains("-A VNET-PREROUTING -d 203.0.113.10/32 -j DNAT --to-destination 10.20.0.2"))

        // A group deleted: its chain goes with VNET-FORWARD's jump to it, in one transaction.
        state.firewall!.groups.remove(at: 3)
        _ = try backend.apply(state, revision: 5)
        calls = runner.take()
        #expect(restores(calls) == [[ChainName.forGroup(GroupID(user: "admin", name: "g3"))]], "declared to flush it, then deleted")
        #expect(edits(calls) == ["-D VNET-FORWARD -s 10.20.0.192/26 -d 10.20.0.192/26 -j ACCEPT", "-D VNET-FORWARD -d 10.20.0.192/26 -j vn-admin-g3"], "\(edits(calls))")
        #expect(calls.first { $0.arguments.first == "iptables-restore" }?.input.contains("-X vn-admin-g3") == true)
        let afterDelete = try host.save("filter")
        #expect(!afterDelete.contains(":vn-admin-g3 ") && !afterDelete.contains("-j vn-admin-g3\n"), "the chain and its jump are gone")

        // VNET-FORWARD changed by hand, then a change that would edit it: it is declared whole instead (an edit
        // by position on a chain not as recorded could put a rule after the final DROP).
        try host.sh("iptables -w -I VNET-FORWARD 1 -s 198.51.100.9/32 -j ACCEPT")
        state.firewall!.groups.append(Self.groupChain(41))
        _ = try backend.apply(state, revision: 6)
        calls = runner.take()
        #expect(restores(calls) == [[ChainName.forward, ChainName.forGroup(GroupID(user: "admin", name: "g41"))]] && edits(calls).isEmpty, "\(restores(calls)) \(edits(calls))")
        #expect(!(try host.save("filter")).contains("198.51.100.9"))
        #expect(try backend.apply(state, revision: 6).drift.isEmpty)

        // Drift inside a chain no change touched is still found and put back.
        _ = try backend.apply(state, revision: 6)
        try host.sh("iptables -w -D vn-admin-g12 2")
        let repaired = try backend.apply(state, revision: 6)
        #expect(repaired.drift.contains { $0.contains("missing (filter -A vn-admin-g12") }, "\(repaired.drift)")
        #expect(try backend.apply(state, revision: 6).operations == 0, "repaired once")
        #expect(try host.save("filter").components(separatedBy: "-A vn-admin-g12 ").count == 6)
    }

    /// A pass between changes reads the firewall only when nf_tables' ruleset generation moved since vnet's rules
    /// were last verified: nothing at all when nobody touched the ruleset; the whole of vnet's part when anyone
    /// did (an operator's own chain, a rule deleted inside a chain no change touched), with the drift found and
    /// put back. On real netfilter, with the commands counted.
    @Test func aPassReadsTheFirewallOnlyWhenTheRulesetChanged() throws {
        let host = try Host()
        var state = Self.frontEnd(groups: 10)
        let runner = RecordingRunner(host.runner)
        let backend = LinuxBackend(runner: runner, stateFile: host.stateFile, interface: "eth0", bridge: "br0")
        _ = try backend.apply(state, revision: 1)
        _ = runner.take()
        func firewallCommands() -> [[String]] { runner.take().map(\.arguments).filter { $0.first?.hasPrefix("iptables") == true } }

        var pass = try backend.apply(state, revision: 1)
        #expect(pass.operations == 0 && pass.drift.isEmpty)
        #expect(firewallCommands().isEmpty, "nobody changed the ruleset: nothing is read")

        // The operator's own chain, outside vnet's: read once, no drift, then quiet again.
        try host.sh("iptables -w -N operator-audit")
        try host.sh("iptables -w -A operator-audit -s 198.51.100.20/32 -j RETURN")
        pass = try backend.apply(state, revision: 1)
        #expect(pass.drift.isEmpty && pass.operations == 0, "\(pass.drift)")
        #expect(firewallCommands().contains { $0.first == "iptables-save" }, "the generation moved: vnet's rules are read")
        _ = try backend.apply(state, revision: 1)
        #expect(firewallCommands().isEmpty)

        // A change, then a pass: the change read back only its chains and the generation moved by its own
        // transaction alone, so the pass reads nothing.
        state.firewall!.groups.append(Self.groupChain(10))
        _ = try backend.apply(state, revision: 2)
        #expect(!firewallCommands().contains { $0.first == "iptables-save" })
        _ = try backend.apply(state, revision: 2)
        #expect(firewallCommands().isEmpty, "a change of vnet's own leaves the rest verified")

        // A rule deleted by hand inside a chain no change touched: found on the next pass and put back.
        try host.sh("iptables -w -D vn-admin-g4 3")
        pass = try backend.apply(state, revision: 2)
        #expect(pass.drift.contains { $0.contains("missing (filter -A vn-admin-g4") }, "\(pass.drift)")
        #expect(try host.save("filter").components(separatedBy: "-A vn-admin-g4 ").count == 6)
        _ = runner.take()
        pass = try backend.apply(state, revision: 2)
        #expect(pass.operations == 0 && pass.drift.isEmpty)
        #expect(firewallCommands().isEmpty, "repaired and read back whole: verified again")

        // A hand edit made while a change is written (between two passes, before the change): the change
        // cannot vouch for the rest, so the next pass reads everything and finds it.
        try host.sh("iptables -w -A vn-admin-g2 -s 198.51.100.30/32 -j ACCEPT")
        state.firewall!.groups.append(Self.groupChain(11))
        _ = try backend.apply(state, revision: 3)
        pass = try backend.apply(state, revision: 3)
        #expect(pass.drift.contains { $0.contains("unexpected lines in vnet's chains (filter -A vn-admin-g2 -s 198.51.100.30/32") }, "\(pass.drift)")
        #expect(!(try host.save("filter")).contains("198.51.100.30"))
    }

    /// Eucalyptus' iptables-preload: the tables it names are replaced by its content together with vnet's chains
    /// (Eucalyptus flushed and loaded it); loaded once, again when the file changes, not on an agent restart; a
    /// file iptables-restore rejects is named by line and changes nothing.
    @Test func theIPTablesPreloadIsLoadedWithVNetsChainsOnceAndWhenChanged() throws {
        let host = try Host()
        try host.sh("iptables -w -A INPUT -s 198.51.100.99/32 -j DROP")  // a rule the preload does not keep
        let layout = NetworkLayout(subnet: IPv4Network("10.20.0.0/16")!, addressesPerNetwork: 64)
        let web = GroupID(user: "admin", name: "web")
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .managedNoVLAN)
        state.requiredLinks = ["eth0"]
        state.firewall = FirewallConfig(subnet: layout.subnet,
                                        groups: [.init(group: web, chain: ChainName.forGroup(web), network: layout.network(0), rules: [])],
                                        publicMappings: [], metadataTarget: nil)
        let path = host.stateFile + ".preload"
        // As `iptables-save` of a running front end writes it: vnet's own chains and jumps included.
        let preload = """
            # Generated by iptables-save
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :operator-ssh - [0:0]
            :VNET-FORWARD - [0:0]
            -A INPUT -p tcp -m tcp --dport 22 -j operator-ssh
            -A FORWARD -j VNET-FORWARD
            -A operator-ssh -s 198.51.100.0/24 -j ACCEPT
            -A VNET-FORWARD -d 10.20.0.0/16 -j DROP
            COMMIT
            *nat
            :PREROUTING ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            -A PREROUTING -d 198.51.100.1/32 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 192.0.2.9:22
            COMMIT

            """
        try preload.write(toFile: path, atomically: true, encoding: .utf8)
        let backend = host.backend(preload: path)
        let report = try backend.apply(state, revision: 1)
        #expect(report.notes == ["loaded \(path): 3 rules in filter, nat; 3 lines about vnet's own chains ignored"])
        var filter = try host.save("filter")
        #expect(!filter.contains("198.51.100.99"), "the tables the preload names are replaced, as Eucalyptus flushed them")
        #expect(filter.contains("-A INPUT -p tcp -m tcp --dport 22 -j operator-ssh") && filter.contains("-A operator-ssh -s 198.51.100.0/24 -j ACCEPT"))
        #expect(filter.contains(":FORWARD DROP") && filter.contains("-A FORWARD -j VNET-FORWARD") && filter.contains(":vn-admin-web"))
        #expect(filter.components(separatedBy: "-A FORWARD -j VNET-FORWARD").count == 2, "vnet's lines of the saved file are not doubled")
        #expect(!filter.contains("-A VNET-FORWARD -d 10.20.0.0/16 -j DROP\n-A VNET-FORWARD -d 10.20.0.0/16 -j DROP"))
        let nat = try host.save("nat")
        #expect(nat.contains("--dport 2222 -j DNAT --to-destination 192.0.2.9:22") && nat.contains("-A VNET-POSTROUTING -s 10.20.0.0/16 ! -d 10.20.0.0/16 -j MASQUERADE"))

        #expect(try backend.apply(state, revision: 1).operations == 0, "an unchanged preload is not loaded again")
        #expect(try host.backend(preload: path).apply(state, revision: 1).operations == 0, "nor by a restarted agent")

        // A file iptables-restore rejects: named by its line, and nothing changes.
        try preload.replacingOccurrences(of: "--dport 22 -j operator-ssh", with: "--dport 99999 -j operator-ssh")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let before = try host.save("filter")
        do {
            _ = try backend.apply(state, revision: 1)
            Issue.record("a preload with a bad port was loaded")
        } catch {
            #expect("\(error)".contains("\(path):8: iptables-restore rejects '-A INPUT -p tcp -m tcp --dport 99999 -j operator-ssh'; nothing was changed"), "\(error)")
        }
        #expect(try host.save("filter") == before)
        // A file that is not iptables-save output at all: named by line before anything runs.
        try "*filter\n-A INPUT -j ACCEPT\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: LinuxBackend.Failure.self) { try backend.apply(state, revision: 1) }
        do { _ = try backend.apply(state, revision: 1) } catch { #expect("\(error)".contains("\(path):1: *filter has no COMMIT"), "\(error)") }

        // A changed, good file is loaded again.
        try preload.replacingOccurrences(of: "198.51.100.0/24", with: "198.51.100.128/25").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try backend.apply(state, revision: 1).operations == 3)
        filter = try host.save("filter")
        #expect(filter.contains("-A operator-ssh -s 198.51.100.128/25 -j ACCEPT") && !filter.contains("198.51.100.0/24"))
        #expect(filter.contains(":vn-admin-web") && filter.contains(":FORWARD DROP"))

        // The front end reboots: every table empty, vnet's chains and the operator's rules gone. The agent comes
        // back (a new backend, same state files) and its first apply puts both back, in one load.
        for table in ["filter", "nat"] {
            try host.sh("iptables -w -t \(table) -F")
            try host.sh("iptables -w -t \(table) -X")
        }
        try host.sh("iptables -w -P FORWARD ACCEPT")
        #expect(!(try host.save("filter")).contains("operator-ssh"))
        let rebooted = try host.backend(preload: path).apply(state, revision: 1)
        #expect(rebooted.notes.contains { $0.hasPrefix("loaded \(path)") }, "\(rebooted)")
        filter = try host.save("filter")
        #expect(filter.contains("-A operator-ssh -s 198.51.100.128/25 -j ACCEPT") && filter.contains("-A INPUT -p tcp -m tcp --dport 22 -j operator-ssh"),
                "the operator's rules are back")
        #expect(filter.contains(":vn-admin-web") && filter.contains("-A FORWARD -j VNET-FORWARD") && filter.contains(":FORWARD DROP"), "and vnet's")
        #expect(try host.save("nat").contains("--dport 2222 -j DNAT --to-destination 192.0.2.9:22"))
        #expect(try host.backend(preload: path).apply(state, revision: 1).operations == 0, "then left alone")
    }

    @Test func stateNeedingDhcpdIsRefusedWholeWithoutDhcpdSettings() throws {
        let host = try Host()
        var state = Self.node([Self.vif(1)])
        state.dhcpd = DHCPDConfig(sharedNetwork: true, subnets: [], hosts: [], interfaces: ["br0"])
        #expect(throws: LinuxBackend.Failure.self) { try host.backend().apply(state, revision: 1) }
        #expect(try host.links()["vn-00000001"] == nil, "nothing half-applied")
    }
}
