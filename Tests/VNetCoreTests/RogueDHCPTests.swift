import Testing
@testable import VNetCore

@Suite("verify-vlan --dhcp: the DISCOVER frame, server replies, the judgement")
struct RogueDHCPTests {
    let host = MACAddress("02:00:00:00:00:0a")!
    let rogue = MACAddress("52:54:00:ab:cd:ef")!
    let frontEnd = MACAddress("52:54:00:00:04:01")!

    @Test func theDiscoverIsAWholeTaggedFrameFromTheHostsOwnMAC() throws {
        let client = RogueDHCP.clientMAC(host: "n1", vlan: 20)
        #expect(client.description.hasPrefix("02:76:6e:") && RogueDHCP.isProbeClient(client))
        #expect(client == RogueDHCP.clientMAC(host: "n1", vlan: 20) && client != RogueDHCP.clientMAC(host: "n1", vlan: 21)
                && client != RogueDHCP.clientMAC(host: "n2", vlan: 20), "stable per host and VID, distinct otherwise")
        #expect(!RogueDHCP.isProbeClient(MACPrefix.eucalyptusDefault.mac(for: InstanceID("i-02766e01")!)), "never an instance's MAC")
        let frame = DHCPDiscover.frame(source: host, client: client, vlan: 20, transaction: 0x01020304)
        #expect(Array(frame[0..<6]) == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] && Array(frame[6..<12]) == host.bytes, "broadcast, from the host's own MAC")
        #expect(Array(frame[12..<18]) == [0x81, 0x00, 0x00, 20, 0x08, 0x00], "tagged VID 20, IPv4")
        let ip = Array(frame[18...])
        #expect(ip[9] == 17 && Array(ip[12..<20]) == [0, 0, 0, 0, 255, 255, 255, 255] && Array(ip[20..<24]) == [0, 68, 0, 67])
        var sum: UInt32 = 0
        for index in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[index]) << 8 | UInt32(ip[index + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        #expect(sum == 0xffff, "the IPv4 header checksum holds")
        #expect(Int(ip[2]) << 8 | Int(ip[3]) == ip.count, "the IP length is the packet's")
        let bootp = Array(ip[28...])
        #expect(bootp[0] == 1 && bootp[10] == 0x80 && Array(bootp[28..<34]) == client.bytes && Array(bootp[4..<8]) == [1, 2, 3, 4],
                "a BOOTREQUEST for the made-up client, broadcast flag set")
        #expect(bootp[240..<243] == [53, 1, 1], "DHCPDISCOVER")
        let untagged = DHCPDiscover.frame(source: host, client: client, vlan: 0, transaction: 1)
        #expect(Array(untagged[12..<14]) == [0x08, 0x00] && untagged.count == frame.count - 4)
    }

    /// A server's offer as an Ethernet frame: [tag], IPv4 from `server`, UDP 67 -> 68.
    static func offer(from mac: MACAddress, vlan: Int, client: MACAddress, server: [UInt8] = [10, 20, 2, 66]) -> [UInt8] {
        var packet = WireReadingTests.reply(mac: client.bytes, yiaddr: [10, 20, 2, 70], options: [53, 1, 2, 54, 4] + server + [255])
        packet.replaceSubrange(12..<16, with: server)
        return [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + mac.bytes + (vlan == 0 ? [] : [0x81, 0x00, UInt8(vlan >> 8), UInt8(vlan & 0xff)]) + [0x08, 0x00] + packet
    }

    @Test func aServersReplyIsReadTaggedInlineStrippedOrUntagged() throws {
        let client = RogueDHCP.clientMAC(host: "fe", vlan: 20)
        let tagged = Self.offer(from: rogue, vlan: 20, client: client)
        let sighting = try #require(RogueDHCP.Sighting.parse(frame: tagged, strippedVLAN: nil))
        #expect(sighting == RogueDHCP.Sighting(vlan: 20, serverMAC: rogue, serverIP: IPv4Address("10.20.2.66")!, identifier: IPv4Address("10.20.2.66"),
                                               offered: IPv4Address("10.20.2.70")!, client: client))
        #expect(sighting.answeredProbe)
        var stripped = tagged
        stripped.removeSubrange(12..<16)
        #expect(RogueDHCP.Sighting.parse(frame: stripped, strippedVLAN: 20)?.vlan == 20, "the kernel took the tag")
        #expect(RogueDHCP.Sighting.parse(frame: stripped, strippedVLAN: nil)?.vlan == 0, "untagged")
        let other = try #require(RogueDHCP.Sighting.parse(frame: Self.offer(from: frontEnd, vlan: 0, client: MACAddress("d0:0d:00:00:00:01")!), strippedVLAN: nil))
        #expect(!other.answeredProbe, "an offer to an instance, not to the check's client")
        // Not a server's reply, or cut short: nothing.
        var request = tagged
        request[18 + 20 + 1] = 68  // source port 68: a client's
        #expect(RogueDHCP.Sighting.parse(frame: request, strippedVLAN: nil) == nil)
        for length in 0..<tagged.count where length < 300 { _ = RogueDHCP.Sighting.parse(frame: Array(tagged.prefix(length)), strippedVLAN: nil) }
        #expect(RogueDHCP.Sighting.parse(frame: Array(tagged.prefix(100)), strippedVLAN: nil) == nil)
    }

    @Test func onlyTheFrontEndMayServeTheInstanceNetworks() throws {
        let probe = RogueDHCP.clientMAC(host: "n2", vlan: 20)
        func seen(_ host: String, _ mac: MACAddress, _ vlan: Int) -> (host: String, sighting: RogueDHCP.Sighting) {
            (host, RogueDHCP.Sighting(vlan: vlan, serverMAC: mac, serverIP: IPv4Address("10.20.2.66")!, identifier: nil,
                                      offered: IPv4Address("10.20.2.70")!, client: probe))
        }
        let sightings = [seen("fe", rogue, 20), seen("n2", rogue, 20), seen("n1", frontEnd, 20), seen("n2", frontEnd, 20), seen("n2", rogue, 0)]
        let managed = RogueDHCP.judge(sightings: sightings, allowed: [frontEnd], mode: .managed)
        #expect(managed.count == 3)
        #expect(managed.filter(\.rogue).map { "\($0.vlan) \($0.seenBy)" } == ["20 [\"fe\", \"n2\"]"], "MANAGED: the VLANs are the instance networks")
        #expect(managed.first { $0.vlan == 0 }?.instanceNetwork == false, "the untagged network carries no instances in MANAGED")
        #expect(managed.first { $0.mac == frontEnd }?.allowed == true)
        let findings = RogueDHCP.findings(managed, hosts: ["fe", "n1", "n2"])
        #expect(findings.count == 2, "\(findings)")
        #expect(findings[0] == "untagged: another DHCP server offers addresses to unknown clients: 52:54:00:ab:cd:ef (10.20.2.66), seen by n2 (not an instance network here: listed, not judged)")
        #expect(findings[1] == "VID 20: a DHCP server other than the front end's offers addresses to unknown clients: 52:54:00:ab:cd:ef (10.20.2.66), seen by fe, n2; not seen by n1, which it may sit behind: a rogue server on an instance network (an instance running its own, or a misplaced port)")
        let flat = RogueDHCP.judge(sightings: sightings, allowed: [frontEnd], mode: .managedNoVLAN)
        #expect(flat.filter(\.rogue).map(\.vlan) == [0], "MANAGED-NOVLAN: the untagged network is the instances'")
        #expect(RogueDHCP.judge(sightings: sightings, allowed: [frontEnd], mode: .staticMode).filter(\.rogue).map(\.vlan) == [0])
        #expect(RogueDHCP.judge(sightings: sightings, allowed: [], mode: .system).allSatisfy { !$0.rogue }, "SYSTEM: the site's server is expected")
    }
}
