import Testing
@testable import VNetCore

@Suite("host planner and kernel operations")
struct HostPlannerTests {
    let config = validConfig(managedFrontend)

    func cluster(_ build: (inout Allocator) throws -> Void) throws -> ClusterState {
        var allocator = try Allocator(config: config, state: ClusterState(frontend: "fe"))
        for name in ["n1", "n2"] { try allocator.addNode(.init(name: name, interface: "eth0", bridge: "br0")) }
        try build(&allocator)
        return allocator.state
    }

    let web = GroupID(user: "admin", name: "web")
    let db = GroupID(user: "admin", name: "db")

    func twoGroups() throws -> ClusterState {
        try cluster { a in
            try a.createGroup(web)
            try a.createGroup(db, rules: [SecurityRule(.tcp(5432...5432), from: .group(web))])
            try a.runInstance(InstanceID(number: 1), on: "n1", group: web)
            try a.runInstance(InstanceID(number: 2), on: "n2", group: web)
            try a.runInstance(InstanceID(number: 3), on: "n2", group: db)
            let address = try a.allocatePublicIP()
            try a.associate(address, with: InstanceID(number: 1))
        }
    }

    @Test func managedNodeGetsAVLANBridgePerActiveGroup() throws {
        let states = try HostPlanner(config: config).desiredStates(for: try twoGroups())
        let n2 = try #require(states["n2"])
        #expect(n2.vlanDevices.map(\.name) == ["eth0.10", "eth0.11"])
        #expect(n2.bridges.map(\.name) == ["eucabr10", "eucabr11"])
        #expect(n2.bridges.map(\.ports) == [["eth0.10"], ["eth0.11"]])
        #expect(n2.vifs.map(\.bridge) == ["eucabr10", "eucabr11"])
        let n1 = try #require(states["n1"])
        #expect(n1.bridges.map(\.name) == ["eucabr10"], "n1 has no db instance, so no eucabr11")
        let fe = try #require(states["fe"])
        #expect(fe.addresses.map(\.cidr) == ["203.0.113.10/32", "10.20.2.1/26", "10.20.2.65/26"])
        #expect(fe.dhcpd?.interfaces == ["eth0.10", "eth0.11"])
        #expect(fe.dhcpd?.sharedNetwork == false)
        #expect(fe.firewall?.groups.map(\.chain) == ["vn-admin-web", "vn-admin-db"])
        #expect(fe.firewall?.groups[1].rules.first?.source.description == "10.20.2.0/26", "a group source resolves to its network")
    }

    @Test func groupWithoutInstancesIsNotBroughtUp() throws {
        let state = try cluster { a in try a.createGroup(web) }
        let fe = try #require(try HostPlanner(config: config).desiredState(of: "fe", in: state))
        #expect(fe.vlanDevices.isEmpty && fe.addresses.isEmpty && fe.dhcpd == nil)
        #expect(fe.firewall?.groups.isEmpty == true)
    }

    @Test func noVLANModeUsesTheConfiguredBridgeAndOneSharedNetwork() throws {
        let novlan = validConfig(with(managedFrontend, "VNET_MODE", "MANAGED-NOVLAN"))
        var allocator = try Allocator(config: novlan, state: ClusterState(frontend: "fe"))
        try allocator.addNode(.init(name: "n1", interface: "eth0", bridge: "br7"))
        try allocator.createGroup(web)
        try allocator.createGroup(db)
        try allocator.runInstance(InstanceID(number: 1), on: "n1", group: web)
        try allocator.runInstance(InstanceID(number: 2), on: "n1", group: db)
        let states = try HostPlanner(config: novlan).desiredStates(for: allocator.state)
        #expect(states["n1"]?.vlanDevices.isEmpty == true)
        #expect(states["n1"]?.bridges.isEmpty == true)
        #expect(states["n1"]?.requiredLinks == ["br7"])
        #expect(states["n1"]?.vifs.map(\.bridge) == ["br7", "br7"])
        #expect(states["fe"]?.dhcpd?.sharedNetwork == true)
        #expect(states["fe"]?.dhcpd?.interfaces == ["eth0"])
        #expect(states["fe"]?.addresses.map(\.device) == ["eth0", "eth0"])
    }

    @Test func applyingTheSameStateAgainDoesNothing() throws {
        for (host, state) in try HostPlanner(config: config).desiredStates(for: try twoGroups()) {
            #expect(KernelPlanner.operations(from: state, to: state) == [], "\(host)")
        }
    }

    @Test func addsComeBeforeRemoves() throws {
        let before = try twoGroups()
        var allocator = try Allocator(config: config, state: before)
        try allocator.terminateInstance(InstanceID(number: 3))
        try allocator.runInstance(InstanceID(number: 4), on: "n2", group: web)
        let planner = HostPlanner(config: config)
        let old = try #require(try planner.desiredState(of: "n2", in: before))
        let new = try #require(try planner.desiredState(of: "n2", in: allocator.state))
        let operations = KernelPlanner.operations(from: old, to: new)
        let firstRemove = try #require(operations.firstIndex { if case .deleteLink = $0 { return true }; return false })
        let lastAdd = try #require(operations.lastIndex { if case .attach = $0 { return true }; return false })
        #expect(lastAdd < firstRemove)
    }

    /// Terminating the last instance of a group on a node removes that node's eucabr<vlan> and its 802.1Q
    /// device, and touches nothing of other groups.
    @Test func lastInstanceOfAGroupTakesItsVLANDown() throws {
        let before = try twoGroups()
        var allocator = try Allocator(config: config, state: before)
        try allocator.terminateInstance(InstanceID(number: 3))
        let planner = HostPlanner(config: config)
        let old = try #require(try planner.desiredState(of: "n2", in: before))
        let new = try #require(try planner.desiredState(of: "n2", in: allocator.state))
        let operations = KernelPlanner.operations(from: old, to: new)
        #expect(operations == [.requireLink("eth0"), .deleteLink("vn-00000003"), .deleteLink("eucabr11"), .deleteLink("eth0.11")])
        let n1Before = try #require(try planner.desiredState(of: "n1", in: before))
        let n1After = try #require(try planner.desiredState(of: "n1", in: allocator.state))
        #expect(n1Before == n1After)
    }

    @Test func aTapIsKeptOnlyWhileItCarriesItsHostSideMAC() throws {
        let state = try cluster { a in
            try a.createGroup(web)
            try a.runInstance(InstanceID(number: 1), on: "n1", group: web)
        }
        let desired = try #require(try HostPlanner(config: config).desiredState(of: "n1", in: state))
        let guest = MACPrefix.eucalyptusDefault.mac(for: InstanceID(number: 1))
        #expect(guest.tapHostSide == MACAddress("fe:0d:00:00:00:01")!)
        #expect(KernelPlanner.bringUp(desired).contains(.createTap(name: "vn-00000001", mac: guest)))
        #expect(KernelOperation.createTap(name: "vn-00000001", mac: guest).description.hasSuffix("address fe:0d:00:00:00:01 (guest d0:0d:00:00:00:01)"))
        #expect(KernelPlanner.operations(from: desired, to: desired).isEmpty)
        // A tap that serves no guest as it should (the backend reports no guest MAC for it) is made again.
        var observed = desired
        observed.vifs[0].mac = MACAddress(0)
        let operations = KernelPlanner.operations(from: observed, to: desired)
        #expect(operations.contains(.deleteLink("vn-00000001")) && operations.contains(.createTap(name: "vn-00000001", mac: guest)), "\(operations)")
    }

    @Test func hypervisorVifsAreDetachedNotDeleted() throws {
        let state = try cluster { a in
            try a.createGroup(web)
            try a.runInstance(InstanceID(number: 1), on: "n1", group: web, hypervisorVif: "vnet0")
        }
        let planner = HostPlanner(config: config)
        let desired = try #require(try planner.desiredState(of: "n1", in: state))
        #expect(!KernelPlanner.bringUp(desired).contains(.createTap(name: "vnet0", mac: MACPrefix.eucalyptusDefault.mac(for: InstanceID(number: 1)))))
        #expect(KernelPlanner.bringUp(desired).contains(.attach(port: "vnet0", bridge: "eucabr10")))
        // Observed attached with its own host-side MAC: nothing to do.
        var observed = desired
        observed.vifs[0].mac = MACAddress("fe:54:00:12:34:56")!
        #expect(KernelPlanner.operations(from: observed, to: desired).allSatisfy { if case .requireLink = $0 { true } else { false } })
        var empty = desired
        empty.vifs = []
        #expect(KernelPlanner.operations(from: desired, to: empty).contains(.detach(port: "vnet0")))
        #expect(!KernelPlanner.operations(from: desired, to: empty).contains(.deleteLink("vnet0")))
    }

    @Test func movedVifIsReattachedInPlace() throws {
        let state = try twoGroups()
        let desired = try #require(try HostPlanner(config: config).desiredState(of: "n1", in: state))
        var observed = desired
        observed.vifs[0].bridge = "elsewhere"
        #expect(KernelPlanner.operations(from: observed, to: desired) == [.requireLink("eth0"), .attach(port: "vn-00000001", bridge: "eucabr10")])
    }

    @Test func chainNames() {
        #expect(ChainName.forGroup(GroupID(user: "admin", name: "default")) == "vn-admin-default")
        let long = ChainName.forGroup(GroupID(user: "averyveryverylongusername", name: "production web servers"))
        #expect(long.utf8.count <= NameRules.maxChainNameLength)
        #expect(long.hasPrefix("vn-averyveryv~"))
        #expect(long == ChainName.forGroup(GroupID(user: "averyveryverylongusername", name: "production web servers")), "stable")
        // user "a-b" + group "c" and user "a" + group "b-c" must not share a chain.
        #expect(ChainName.forGroup(GroupID(user: "a-b", name: "c")) != ChainName.forGroup(GroupID(user: "a", name: "b-c")))
        var seen = Set<String>()
        for user in 0..<30 { for group in 0..<30 {
            let name = ChainName.forGroup(GroupID(user: "user\(user)", name: "group with space \(group)"))
            #expect(name.utf8.count <= 28)
            seen.insert(name)
        } }
        #expect(seen.count == 900)
    }
}
