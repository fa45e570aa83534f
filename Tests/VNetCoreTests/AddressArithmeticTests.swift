import Testing
@testable import VNetCore

@Suite("address arithmetic")
struct AddressArithmeticTests {
    @Test func ipv4ParsingIsStrict() {
        #expect(IPv4Address("192.168.0.1")?.description == "192.168.0.1")
        #expect(IPv4Address("0.0.0.0")?.value == 0)
        #expect(IPv4Address("255.255.255.255")?.value == UInt32.max)
        for bad in ["", "1.2.3", "1.2.3.4.", ".1.2.3", "01.2.3.4", "1.2.3.256", "1.2.3.4 ", "1,2,3,4", "١.2.3.4", "1.2.3.0004"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
    }

    @Test func macFormatting() {
        #expect(MACAddress("AA:dd:11:CE:ff:ED")?.description == "aa:dd:11:ce:ff:ed")
        #expect(MACAddress("aa:dd:11:ce:ff") == nil)
        #expect(MACAddress("aa-dd-11-ce-ff-ed") == nil)
        #expect(MACAddress("aaa:d:11:ce:ff:ed") == nil)
    }

    @Test func macFromInstanceID() throws {
        // The reference example: i-3F1A0B2C -> d0:0d:3f:1a:0b:2c.
        let id = try #require(InstanceID("i-3F1A0B2C"))
        #expect(id.description == "i-3f1a0b2c")
        #expect(MACPrefix.eucalyptusDefault.mac(for: id).description == "d0:0d:3f:1a:0b:2c")
        #expect(MACPrefix("0a:1b")!.mac(for: InstanceID(number: 1)).description == "0a:1b:00:00:00:01")
        for bad in ["i-3F1A0B2", "i-3F1A0B2CX", "x-3F1A0B2C", "i-3G1A0B2C", "3F1A0B2C"] { #expect(InstanceID(bad) == nil, "\(bad)") }
    }

    @Test func netmaskContiguity() {
        #expect(IPv4Network.prefixLength(ofNetmask: IPv4Address("255.255.255.192")!) == 26)
        #expect(IPv4Network.prefixLength(ofNetmask: IPv4Address("0.0.0.0")!) == 0)
        #expect(IPv4Network.prefixLength(ofNetmask: IPv4Address("255.255.255.255")!) == 32)
        #expect(IPv4Network.prefixLength(ofNetmask: IPv4Address("255.255.0.255")!) == nil)
        #expect(IPv4Network.prefixLength(ofNetmask: IPv4Address("0.255.255.255")!) == nil)
    }

    @Test func seedLayout() {
        let layout = NetworkLayout(subnet: IPv4Network("192.168.0.0/16")!, addressesPerNetwork: 64)
        #expect(layout.networkCount == 1024)
        #expect(layout.instancesPerNetwork == 61)
        #expect(layout.network(0).description == "192.168.0.0/26")
        #expect(layout.router(1).description == "192.168.0.65")
        #expect(layout.broadcast(1).description == "192.168.0.127")
        #expect(layout.instanceAddress(network: 1, slot: 0).description == "192.168.0.66")
        #expect(layout.instanceAddress(network: 1, slot: 60).description == "192.168.0.126")
        #expect(layout.vlan(ofNetwork: 0) == 2)
        #expect(layout.networkIndex(ofVLAN: 1025) == 1023)
        #expect(layout.networkIndex(ofVLAN: 1026) == nil)
        #expect(layout.networkIndex(ofVLAN: 1) == nil)
    }

    /// For random subnets and network sizes: every instance address lies in its network, no instance gets a
    /// network, router or broadcast address, networks are disjoint and tile the subnet in order, VLAN tags
    /// stay in 2...4094, and `locate` inverts `instanceAddress`.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func layoutProperties(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        for _ in 0..<60 {
            let prefix = Int.random(in: 8...30, using: &random)
            let base = UInt32.random(in: 0...UInt32.max, using: &random) & IPv4Network.maskValue(prefix)
            let subnet = IPv4Network(address: IPv4Address(base), prefixLength: prefix)!
            let maxBits = 32 - prefix
            let bits = Int.random(in: 2...maxBits, using: &random)
            let layout = NetworkLayout(subnet: subnet, addressesPerNetwork: 1 << bits)
            #expect(layout.networkCount >= 1 && layout.networkCount <= 4093)
            // Sample networks: first, last and random ones.
            var indices = [0, layout.networkCount - 1]
            for _ in 0..<20 { indices.append(Int.random(in: 0..<layout.networkCount, using: &random)) }
            for n in indices {
                let network = layout.network(n)
                #expect(subnet.contains(network.address) && subnet.contains(network.broadcast), "seed \(seed)")
                #expect((2...4094).contains(layout.vlan(ofNetwork: n)))
                #expect(layout.networkIndex(ofVLAN: layout.vlan(ofNetwork: n)) == n)
                if n + 1 < layout.networkCount {
                    let next = layout.network(n + 1)
                    #expect(!network.overlaps(next))
                    #expect(next.address.value == network.broadcast.value &+ 1)
                }
                let router = layout.router(n), broadcast = layout.broadcast(n)
                for slot in [0, layout.instancesPerNetwork - 1, Int.random(in: 0..<layout.instancesPerNetwork, using: &random)] {
                    let address = layout.instanceAddress(network: n, slot: slot)
                    #expect(network.contains(address), "seed \(seed)")
                    #expect(address != network.address && address != router && address != broadcast, "seed \(seed)")
                    let place = layout.locate(address)
                    #expect(place?.network == n && place?.slot == slot, "seed \(seed)")
                }
                #expect(layout.locate(network.address) == nil)
                #expect(layout.locate(router) == nil)
                #expect(layout.locate(broadcast) == nil)
            }
        }
    }
}
