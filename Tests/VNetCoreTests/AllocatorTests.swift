import Testing
@testable import VNetCore

@Suite("allocator")
struct AllocatorTests {
    func managed(_ extra: [(String, String)] = []) -> VNetConfig {
        validConfig(extra.reduce(managedFrontend) { with($0, $1.0, $1.1) })
    }

    func cluster(_ config: VNetConfig, nodes: [String] = ["n1", "n2"]) throws -> Allocator {
        var allocator = try Allocator(config: config, state: ClusterState(frontend: "fe"))
        for name in nodes { try allocator.addNode(.init(name: name, interface: "eth0", bridge: "br0")) }
        return allocator
    }

    /// Random sequences of create/delete group, run/terminate instance and public-IP operations: after
    /// every step no address, MAC or network is held twice, every address lies in its group's network
    /// slots, and resuming from the state gives the same state.
    @Test(arguments: [UInt64(11), 12, 13, 14])
    func randomOperationsKeepInvariants(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        // Small networks (8 addresses: 5 instances) and few of them, so that exhaustion happens often.
        let config = managed([("VNET_SUBNET", "10.20.0.0"), ("VNET_NETMASK", "255.255.255.0"), ("VNET_ADDRSPERNET", "8")])
        var allocator = try cluster(config)
        let layout = try #require(config.layout)
        var nextID: UInt32 = 1
        for step in 0..<600 {
            let groups = allocator.state.groups.keys.sorted()
            let instances = allocator.state.instances.keys.sorted()
            switch Int.random(in: 0..<10, using: &random) {
            case 0:
                _ = try? allocator.createGroup(GroupID(user: "u", name: "g\(Int.random(in: 0..<40, using: &random))"))
            case 1:
                if let group = groups.randomElement(using: &random) { _ = try? allocator.deleteGroup(group) }
            case 2, 3, 4, 5:
                if let group = groups.randomElement(using: &random) {
                    _ = try? allocator.runInstance(InstanceID(number: nextID), on: ["n1", "n2"].randomElement(using: &random)!, group: group)
                    nextID += 1
                }
            case 6, 7:
                if let instance = instances.randomElement(using: &random) { _ = try? allocator.terminateInstance(instance) }
            case 8:
                if let address = try? allocator.allocatePublicIP(), let instance = instances.randomElement(using: &random) {
                    _ = try? allocator.associate(address, with: instance)
                }
            default:
                if let (address, _) = allocator.state.publicIPs.randomElement(using: &random) {
                    _ = try? allocator.disassociate(address)
                    _ = try? allocator.releasePublicIP(address)
                }
            }
            let state = allocator.state
            let addresses = state.instances.values.compactMap(\.address)
            #expect(Set(addresses).count == addresses.count, "seed \(seed) step \(step): an address is held twice")
            #expect(Set(state.instances.values.map(\.mac)).count == state.instances.count, "seed \(seed) step \(step)")
            #expect(Set(state.groups.values.map(\.network)).count == state.groups.count, "seed \(seed) step \(step)")
            for instance in state.instances.values {
                let group = try #require(instance.group.flatMap { state.groups[$0] })
                let address = try #require(instance.address)
                let place = try #require(layout.locate(address))
                #expect(place.network == group.network, "seed \(seed) step \(step)")
            }
            let associated = state.publicIPs.values.compactMap { $0 }
            #expect(Set(associated).count == associated.count)
            if step % 100 == 99 {
                let resumed = try Allocator(config: config, state: state)
                #expect(resumed.state == state, "seed \(seed) step \(step): resuming changed the state")
            }
        }
    }

    @Test func lowestFreeIsTakenAndReused() throws {
        var allocator = try cluster(managed())
        let web = try allocator.createGroup(GroupID(user: "admin", name: "web"))
        let db = try allocator.createGroup(GroupID(user: "admin", name: "db"))
        // The default VID range starts at 10 (the document's eucabr10): network 8, SUBNET + 8 x 64.
        #expect(web.network == 8 && db.network == 9)
        #expect(allocator.config.layout?.vlan(ofNetwork: web.network) == 10)
        let a = try allocator.runInstance(InstanceID(number: 1), on: "n1", group: web.id)
        let b = try allocator.runInstance(InstanceID(number: 2), on: "n1", group: web.id)
        #expect(a.address?.description == "10.20.2.2")
        #expect(b.address?.description == "10.20.2.3")
        try allocator.terminateInstance(a.id)
        let c = try allocator.runInstance(InstanceID(number: 3), on: "n2", group: web.id)
        #expect(c.address?.description == "10.20.2.2")
        try allocator.deleteGroup(db.id)
        #expect(try allocator.createGroup(GroupID(user: "admin", name: "db2")).network == 9)
    }

    @Test func groupsTakeVIDsFromTheRangeAndStoredGroupsOutsideANarrowedRangeAreKept() throws {
        var allocator = try cluster(managed([("VNET_VLANRANGE", "100-101")]))
        let a = try allocator.createGroup(GroupID(user: "u", name: "a"))
        let b = try allocator.createGroup(GroupID(user: "u", name: "b"))
        let layout = try #require(allocator.config.layout)
        #expect([a.network, b.network].map(layout.vlan(ofNetwork:)) == [100, 101])
        // Eucalyptus' arithmetic: network = SUBNET + (VID-2) x ADDRSPERNET = 10.20.0.0 + 98 x 64.
        #expect(layout.network(a.network).description == "10.20.24.128/26")
        do {
            try allocator.createGroup(GroupID(user: "u", name: "c"))
            Issue.record("a third group got a network outside VIDs 100-101")
        } catch {
            #expect(error.message.contains("VIDs 100-101"))
        }
        #expect(allocator.groupsOutsideVLANRange.isEmpty)
        // The range narrowed: the stored groups keep their networks, are named, and nothing new goes there.
        let narrowed = managed([("VNET_VLANRANGE", "101-102")])
        var resumed = try Allocator(config: narrowed, state: allocator.state)
        #expect(resumed.state.groups[a.id]?.network == a.network)
        #expect(resumed.groupsOutsideVLANRange == [a.id])
        #expect(try resumed.createGroup(GroupID(user: "u", name: "d")).network == layout.networkIndex(ofVLAN: 102))
        try resumed.deleteGroup(a.id)
        #expect(resumed.groupsOutsideVLANRange.isEmpty)
        #expect(throws: ClusterError.self) { try resumed.createGroup(GroupID(user: "u", name: "e")) }
    }

    @Test func fullNetworkAndNoFreeNetwork() throws {
        var allocator = try cluster(managed([("VNET_SUBNET", "10.20.0.0"), ("VNET_NETMASK", "255.255.255.240"), ("VNET_ADDRSPERNET", "8"), ("VNET_VLANRANGE", "2-3")]))
        let group = try allocator.createGroup(GroupID(user: "u", name: "a"))
        _ = try allocator.createGroup(GroupID(user: "u", name: "b"))
        #expect(throws: ClusterError.self) { try allocator.createGroup(GroupID(user: "u", name: "c")) }
        for n in 1...5 { try allocator.runInstance(InstanceID(number: UInt32(n)), on: "n1", group: group.id) }
        let before = allocator.state
        do {
            try allocator.runInstance(InstanceID(number: 6), on: "n1", group: group.id)
            Issue.record("a sixth instance fitted in a network of 5")
        } catch {
            #expect(error.message.contains("is full: 5 instances"))
        }
        #expect(allocator.state == before, "a refused request changed the state")
    }

    @Test func staticTakesPairsInOrderAndSaysWhenNoneIsLeft() throws {
        var allocator = try cluster(validConfig(staticFrontend))
        let first = try allocator.runInstance(InstanceID(number: 1), on: "n1")
        let second = try allocator.runInstance(InstanceID(number: 2), on: "n2")
        #expect(first.mac.description == "aa:dd:11:ce:ff:ed" && first.address?.description == "192.168.1.3")
        #expect(second.mac.description == "aa:dd:11:ce:ff:ee" && second.address?.description == "192.168.1.4")
        do {
            try allocator.runInstance(InstanceID(number: 3), on: "n1")
            Issue.record("a third instance got a pair from a map of two")
        } catch {
            #expect(error.message.contains("no free VNET_MACMAP pair: all 2 are held"))
        }
        try allocator.terminateInstance(first.id)
        #expect(try allocator.runInstance(InstanceID(number: 4), on: "n1").address?.description == "192.168.1.3")
    }

    @Test func modesWithoutGroupsRefuseGroupsAndPublicIPs() throws {
        for config in [validConfig(staticFrontend), validConfig([("VNET_MODE", "SYSTEM")])] {
            var allocator = try cluster(config)
            var messages: [String] = []
            do { _ = try allocator.createGroup(GroupID(user: "u", name: "g")) } catch { messages.append(error.message) }
            do { _ = try allocator.allocatePublicIP() } catch { messages.append(error.message) }
            do { _ = try allocator.runInstance(InstanceID(number: 9), on: "n1", group: GroupID(user: "u", name: "g")) } catch {
                messages.append(error.message)
            }
            #expect(messages.count == 3, "\(config.mode) allowed a group or public IP")
            for message in messages {
                #expect(message.contains("MANAGED or MANAGED-NOVLAN") && message.contains(config.mode.rawValue), "\(message)")
            }
            #expect(allocator.state.instances.isEmpty && allocator.state.groups.isEmpty)
        }
    }

    @Test func groupLifecycleRefusals() throws {
        var allocator = try cluster(managed())
        let web = try allocator.createGroup(GroupID(user: "admin", name: "web"))
        let db = try allocator.createGroup(GroupID(user: "admin", name: "db"), rules: [SecurityRule(.tcp(5432...5432), from: .group(web.id))])
        #expect(throws: ClusterError.self) { try allocator.createGroup(web.id) }
        #expect(throws: ClusterError.self) { try allocator.deleteGroup(web.id) }  // db's rule names it
        try allocator.runInstance(InstanceID(number: 1), on: "n1", group: db.id)
        #expect(throws: ClusterError.self) { try allocator.deleteGroup(db.id) }  // has an instance
        #expect(throws: ClusterError.self) {
            try allocator.setRules(of: web.id, to: [SecurityRule(.tcp(0...10), from: .cidr(IPv4Network("0.0.0.0/0")!))])
        }
        #expect(throws: ClusterError.self) {
            try allocator.setRules(of: web.id, to: [SecurityRule(.icmp(type: nil, code: 3), from: .cidr(IPv4Network("0.0.0.0/0")!))])
        }
        #expect(throws: ClusterError.self) {
            try allocator.setRules(of: web.id, to: [SecurityRule(.udp(53...53), from: .group(GroupID(user: "x", name: "nope")))])
        }
    }

    @Test func publicAddressLifecycle() throws {
        var allocator = try cluster(managed())
        let group = try allocator.createGroup(GroupID(user: "u", name: "g"))
        let instance = try allocator.runInstance(InstanceID(number: 1), on: "n1", group: group.id)
        let address = try allocator.allocatePublicIP()
        #expect(address.description == "203.0.113.10")
        #expect(throws: ClusterError.self) { try allocator.allocatePublicIP(address) }
        #expect(throws: ClusterError.self) { try allocator.allocatePublicIP(IPv4Address("198.51.100.1")) }
        try allocator.associate(address, with: instance.id)
        #expect(throws: ClusterError.self) { try allocator.releasePublicIP(address) }
        try allocator.terminateInstance(instance.id)
        #expect(allocator.state.publicIPs[address] == .some(nil), "terminating keeps the address allocated but unassociated")
        try allocator.releasePublicIP(address)
        #expect(allocator.state.publicIPs.isEmpty)
        for _ in 0..<10 { _ = try allocator.allocatePublicIP() }
        do { _ = try allocator.allocatePublicIP(); Issue.record("an 11th public IP from a list of 10") } catch {
            #expect(error.message.contains("no free public IP"))
        }
    }

    @Test func resumingRefusesInconsistentState() throws {
        let config = managed()
        var allocator = try cluster(config)
        let group = try allocator.createGroup(GroupID(user: "u", name: "g"))
        try allocator.runInstance(InstanceID(number: 1), on: "n1", group: group.id)
        var state = allocator.state
        state.instances[InstanceID(number: 2)] = .init(id: InstanceID(number: 2), node: "n1", group: group.id,
                                                      address: IPv4Address("10.20.0.2"), mac: MACAddress(0x0200_0000_0002))
        #expect(throws: ClusterError.self) { _ = try Allocator(config: config, state: state) }
        var outside = allocator.state
        outside.instances[InstanceID(number: 1)]!.address = IPv4Address("10.20.0.1")  // the router
        #expect(throws: ClusterError.self) { _ = try Allocator(config: config, state: outside) }
    }

    @Test func nodeNamesAndVifsAreChecked() throws {
        var allocator = try cluster(managed())
        #expect(throws: ClusterError.self) { try allocator.addNode(.init(name: "bad name", interface: "eth0", bridge: "br0")) }
        #expect(throws: ClusterError.self) { try allocator.addNode(.init(name: "n3", interface: "eth0-very-long", bridge: "br0")) }
        #expect(throws: ClusterError.self) { try allocator.addNode(.init(name: "n1", interface: "eth0", bridge: "br0")) }
        let group = try allocator.createGroup(GroupID(user: "u", name: "g"))
        try allocator.runInstance(InstanceID(number: 1), on: "n1", group: group.id, hypervisorVif: "vnet0")
        #expect(throws: ClusterError.self) { try allocator.runInstance(InstanceID(number: 2), on: "n1", group: group.id, hypervisorVif: "vnet0") }
        #expect(throws: ClusterError.self) { try allocator.runInstance(InstanceID(number: 3), on: "n1", group: group.id, hypervisorVif: "vnet;0") }
        #expect(throws: ClusterError.self) { try allocator.runInstance(InstanceID(number: 4), on: "nowhere", group: group.id) }
    }
}
