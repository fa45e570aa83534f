import Testing
@testable import VNetCore

@Suite("LLDP: the switch port, parsed and used to name culprits")
struct LLDPTests {
    let switchMAC = MACAddress("52:54:00:12:34:57")!
    let port = LLDPNeighbor(chassisID: "52:54:00:12:34:56", portID: "Eth1/7", ttl: 120, systemName: "sw1", portDescription: "to n3",
                            portVLAN: 1, vlans: [10: "web", 30: "db"], maxFrameSize: 1518)

    @Test func aSwitchsFrameReadsBackAsSent() throws {
        let frame = port.frame(source: switchMAC)
        #expect(Array(frame[0..<6]) == [0x01, 0x80, 0xc2, 0, 0, 0x0e] && Array(frame[12..<14]) == [0x88, 0xcc])
        #expect(LLDPNeighbor.parse(frame) == port)
        #expect(port.label == "sw1 Eth1/7")
        // A port ID that is only a MAC: the description names the port; no system name: the chassis does.
        let bare = LLDPNeighbor(chassisID: "52:54:00:12:34:56", portID: "52:54:00:12:34:58", ttl: 30, portDescription: "Eth1/8")
        #expect(LLDPNeighbor.parse(bare.frame(source: switchMAC)) == bare)
        #expect(bare.label == "52:54:00:12:34:56 Eth1/8")
        // The first TLVs of what Debian's lldpd 1.0.16 sent in a namespace (as tcpdump decoded it, written out
        // here): a MAC chassis ID, a local port ID, TTL 4, the system name, then the end.
        let lldpd: [UInt8] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0xb6, 0x64, 0x98, 0x20, 0xa8, 0x87, 0x88, 0xcc,
                              0x02, 0x07, 0x04, 0xb6, 0x64, 0x98, 0x20, 0xa8, 0x87, 0x04, 0x07, 0x07, 0x45, 0x74, 0x68, 0x31, 0x2f, 0x37,
                              0x06, 0x02, 0x00, 0x04, 0x0a, 0x03, 0x73, 0x77, 0x31, 0x00, 0x00]
        let read = try #require(LLDPNeighbor.parse(lldpd))
        #expect(read.chassisID == "b6:64:98:20:a8:87" && read.portID == "Eth1/7" && read.ttl == 4 && read.systemName == "sw1")
        // Tagged LLDP (rare, but some switches do): read the same.
        var tagged = frame
        tagged.insert(contentsOf: [0x81, 0x00, 0x00, 0x0a], at: 12)
        #expect(LLDPNeighbor.parse(tagged) == port)
    }

    @Test func malformedFramesAreRefusedWhole() throws {
        let frame = port.frame(source: switchMAC)
        for length in 0..<frame.count - 2 {
            // Every cut inside a TLV is refused; a cut between TLVs after the mandatory three may read (no end TLV).
            let cut = LLDPNeighbor.parse(Array(frame.prefix(length)))
            if let cut { #expect(cut.chassisID == port.chassisID && cut.portID == port.portID && cut.ttl == 120, "\(length)") }
        }
        #expect(LLDPNeighbor.parse(Array(frame.prefix(30))) == nil, "without its TTL")
        var wrongType = frame
        wrongType[12] = 0x88; wrongType[13] = 0xb5
        #expect(LLDPNeighbor.parse(wrongType) == nil, "another EtherType")
        // The mandatory TLVs out of order: the port ID first.
        var swapped = Array(frame[0..<14])
        let chassisTLV = Array(frame[14..<(16 + Int(frame[15]))])
        let rest = Array(frame[(16 + Int(frame[15]))...])
        let portLength = 2 + Int(rest[1])
        swapped += Array(rest[0..<portLength]) + chassisTLV + Array(rest[portLength...])
        #expect(LLDPNeighbor.parse(swapped) == nil)
        // A TLV saying it is longer than the frame.
        var long = frame
        long[long.count - 2] = 0x01
        long[long.count - 1] = 0xff
        #expect(LLDPNeighbor.parse(long) == nil)
        // Control characters in a name are not text: the field is dropped, the rest kept.
        let odd = LLDPNeighbor(chassisID: "c", portID: "p", ttl: 1, systemName: "sw\u{1b}[2J")
        #expect(LLDPNeighbor.parse(odd.frame(source: switchMAC))?.systemName == nil)
        // VLAN TLVs out of range are ignored.
        let bad = LLDPNeighbor(chassisID: "c", portID: "p", ttl: 1, vlans: [4095: "x"])
        #expect(LLDPNeighbor.parse(bad.frame(source: switchMAC))?.vlans.isEmpty == true)
    }

    @Test func culpritsAreNamedByTheirPortAndTheAnnouncementIsCompared() throws {
        let hosts = ["fe", "n1", "n2", "n3"]
        let observations = VLANVerificationTests.observations(hosts, vlans: [10, 20]) { host, peer, vlan in vlan == 20 && (host == "n3" || peer == "n3") }
        let result = VLANVerification.judge(hosts: hosts, vlans: [10, 20], observations: observations)
        let conclusions = VLANVerification.conclusions(hosts: hosts, vlans: [10, 20], pairs: result.pairs, culprits: result.culprits, ports: ["n3": port])
        #expect(conclusions.count == 1 && conclusions[0].hasPrefix("VID 20: n3 (sw1 Eth1/7) fails with every other host"), "\(conclusions)")
        #expect(conclusions[0].hasSuffix("; sw1 Eth1/7 announces VLANs 10,30 (LLDP), not 20: the switch's configuration says the same"), "\(conclusions)")
        var carrying = port
        carrying.vlans[20] = "x"
        let disagreeing = VLANVerification.conclusions(hosts: hosts, vlans: [10, 20], pairs: result.pairs, culprits: result.culprits, ports: ["n3": carrying])
        #expect(disagreeing[0].hasSuffix("; yet sw1 Eth1/7 announces VLAN 20 (LLDP): the NIC, or something between it and the port, drops it"))
        #expect(VLANVerification.announcement(of: port, vlan: 20, passes: true)?.contains("its announcement is incomplete") == true)
        #expect(VLANVerification.announcement(of: LLDPNeighbor(chassisID: "c", portID: "p", ttl: 1), vlan: 20, passes: false) == nil, "no VLANs announced: nothing said")

        // --mtu: the port's maximum frame size against the largest that passes.
        let paths = MTUVerificationTests.paths(hosts, vlans: [20]) { from, to, _ in from == "n3" || to == "n3" ? 1500 : nil }
        let findings = MTUVerification.findings(paths: paths, interfaces: MTUVerificationTests.interfaces, expected: .init(mtu: 9000, source: "VNET_MTU"),
                                                ports: ["n3": port])
        #expect(findings.count == 1 && findings[0].hasPrefix("VID 20: n3 (sw1 Eth1/7)'s side passes at most 1500"), "\(findings)")
        #expect(findings[0].hasSuffix("; sw1 Eth1/7 announces a maximum frame size of 1518 (LLDP), a payload of about 1496: as measured"), "\(findings)")
        var jumbo = port
        jumbo.maxFrameSize = 9216
        #expect(MTUVerification.announcement(of: jumbo, passes: 1500, tagged: true)?.hasSuffix("more than passes: something between the port and the hosts drops the rest") == true)
    }
}
