import Testing
@testable import VNetCore
@testable import VNetLinux

/// What the manager sends dhcpd over OMAPI for a change of hosts: the hosts that left and the hosts that came,
/// found with one pass over the two sorted lists (and as sets when a list is not sorted).
@Suite("dhcpd host changes")
struct DHCPDHostDifferenceTests {
    static func host(_ last: UInt8, mac: UInt64? = nil) -> DHCPDConfig.Host {
        DHCPDConfig.Host(mac: MACAddress(mac ?? 0xd00d_0000_0000 | UInt64(last)), address: IPv4Address(10, 0, 0, last))
    }

    @Test func onlyWhatChangedIsSentAndAMovedAddressIsALeavingAndAComing() {
        let old = [Self.host(1), Self.host(2), Self.host(3), Self.host(5)]
        let new = [Self.host(0), Self.host(2), Self.host(3, mac: 0xd00d_0000_0099), Self.host(4), Self.host(6)]
        let (removed, added) = DHCPDManager.difference(from: old, to: new)
        #expect(removed == [Self.host(1), Self.host(3), Self.host(5)])
        #expect(added == [Self.host(0), Self.host(3, mac: 0xd00d_0000_0099), Self.host(4), Self.host(6)])
        #expect(DHCPDManager.difference(from: old, to: old) == ([], []))
        #expect(DHCPDManager.difference(from: [], to: old) == ([], old))
        #expect(DHCPDManager.difference(from: old, to: []) == (old, []))
    }

    @Test func theMergeAgreesWithSetsOnRandomChangesAndUnsortedListsFallBackToThem() {
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<300 {
            let old = (0..<UInt8(200)).filter { _ in Bool.random(using: &generator) }.map { Self.host($0, mac: UInt64.random(in: 0...3, using: &generator)) }
            let new = (0..<UInt8(200)).filter { _ in Bool.random(using: &generator) }.map { Self.host($0, mac: UInt64.random(in: 0...3, using: &generator)) }
            let expected = (Set(old).subtracting(new).sorted(), Set(new).subtracting(old).sorted())
            #expect(DHCPDManager.difference(from: old, to: new) == expected)
            #expect(DHCPDManager.difference(from: old.shuffled(using: &generator), to: new.shuffled(using: &generator)) == expected)
        }
    }
}
