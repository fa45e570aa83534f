/// `verify-vlan --dhcp`: who answers DHCP on each VID. Each host sends a DHCPDISCOVER on every VID (and
/// untagged) from its raw socket, for a client MAC made up for it (never an instance's, never accepted: no
/// REQUEST follows), with the broadcast flag so an offer comes back to everyone on that VLAN; every host
/// notes every DHCP server reply it sees. In STATIC, MANAGED and MANAGED-NOVLAN the front end's dhcpd is the
/// only server allowed on the instance networks (MANAGED: the VLANs; the others: the untagged network), so any
/// other server there is named. Elsewhere (SYSTEM, where the site's server is expected, and networks that carry
/// no instances) the servers seen are listed, not judged. Pure.
public enum RogueDHCP {
    /// The first three octets of the made-up client MACs: locally administered ("02"), "vn".
    public static let clientPrefix: UInt64 = 0x02_76_6e

    /// The client MAC a host asks for on a VID: stable for a host and VID, never a Eucalyptus instance MAC
    /// (those begin with VNET_MACPREFIX, d0:0d by default, and are not locally administered ones of this prefix).
    public static func clientMAC(host: String, vlan: Int) -> MACAddress {
        let hash = FNV1a.hash(Array(host.utf8) + [UInt8(vlan >> 8), UInt8(vlan & 0xff)])
        return MACAddress(clientPrefix << 24 | (hash & 0xff_ffff))
    }

    public static func isProbeClient(_ mac: MACAddress) -> Bool { mac.value >> 24 == clientPrefix }

    /// A DHCP server's reply as one host saw it on the wire.
    public struct Sighting: Sendable, Equatable {
        /// 0: untagged.
        public var vlan: Int
        /// The frame's source: the server's (or its relay's) MAC.
        public var serverMAC: MACAddress
        /// The packet's source address, and option 54 when present.
        public var serverIP: IPv4Address
        public var identifier: IPv4Address?
        /// What it offered (yiaddr), and to whom.
        public var offered: IPv4Address
        public var client: MACAddress
        /// Whether it answered one of this verification's DISCOVERs (the made-up clients), not some other client.
        public var answeredProbe: Bool {
            RogueDHCP.isProbeClient(client)
        }

        public init(vlan: Int, serverMAC: MACAddress, serverIP: IPv4Address, identifier: IPv4Address?, offered: IPv4Address, client: MACAddress) {
            self.vlan = vlan; self.serverMAC = serverMAC; self.serverIP = serverIP; self.identifier = identifier
            self.offered = offered; self.client = client
        }

        /// Reads a received Ethernet frame: IPv4, UDP 67 -> 68, a BOOTREPLY (offer, ack or nak). The tag is taken
        /// inline or from what the kernel reported (`strippedVLAN`, PACKET_AUXDATA); nil for anything else.
        public static func parse(frame: [UInt8], strippedVLAN: Int?) -> Sighting? {
            guard frame.count >= 14 else { return nil }
            var offset = 12
            var vlan = strippedVLAN ?? 0
            if frame[12] == 0x81, frame[13] == 0x00 {
                guard frame.count >= 18 else { return nil }
                vlan = Int(frame[14] & 0x0f) << 8 | Int(frame[15])
                offset = 16
            }
            guard frame[offset] == 0x08, frame[offset + 1] == 0x00, vlan <= 4094 else { return nil }
            let packet = Array(frame[(offset + 2)...])
            guard let reply = DHCPReply.parse(ipPacket: packet) else { return nil }
            let mac = frame[6..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return Sighting(vlan: vlan, serverMAC: MACAddress(mac), serverIP: IPv4Address(packet[12], packet[13], packet[14], packet[15]),
                            identifier: reply.server, offered: reply.address, client: reply.mac)
        }
    }

    /// One server on one VID, over every host that saw it.
    public struct Server: Sendable, Equatable {
        public var vlan: Int
        public var mac: MACAddress
        public var ip: IPv4Address
        public var identifier: IPv4Address?
        public var seenBy: [String]
        /// It answered a DISCOVER of this verification (a server that offers to unknown clients).
        public var answeredProbe: Bool
        /// The front end's own dhcpd.
        public var allowed: Bool
        /// The VID carries instances in this mode: a server other than the front end's there is rogue.
        public var instanceNetwork: Bool
        public var rogue: Bool { !allowed && instanceNetwork }

        public init(vlan: Int, mac: MACAddress, ip: IPv4Address, identifier: IPv4Address?, seenBy: [String], answeredProbe: Bool,
                    allowed: Bool, instanceNetwork: Bool) {
            self.vlan = vlan; self.mac = mac; self.ip = ip; self.identifier = identifier; self.seenBy = seenBy
            self.answeredProbe = answeredProbe; self.allowed = allowed; self.instanceNetwork = instanceNetwork
        }
    }

    /// Whether `vlan` (0: untagged) carries instances in `mode` (none is judged in SYSTEM: the site's server
    /// serves the instances there).
    public static func isInstanceNetwork(vlan: Int, mode: NetworkMode) -> Bool {
        switch mode {
        case .managed: vlan != 0
        case .managedNoVLAN, .staticMode: vlan == 0
        case .system: false
        }
    }

    /// Every server seen, once per VID and MAC, with the hosts that saw it; `allowed`: the front end's MACs.
    public static func judge(sightings: [(host: String, sighting: Sighting)], allowed: Set<MACAddress>, mode: NetworkMode) -> [Server] {
        struct Key: Hashable { var vlan: Int; var mac: MACAddress }
        var servers: [Key: Server] = [:]
        for (host, sighting) in sightings {
            let key = Key(vlan: sighting.vlan, mac: sighting.serverMAC)
            var server = servers[key] ?? Server(vlan: sighting.vlan, mac: sighting.serverMAC, ip: sighting.serverIP, identifier: sighting.identifier,
                                                seenBy: [], answeredProbe: false, allowed: allowed.contains(sighting.serverMAC),
                                                instanceNetwork: isInstanceNetwork(vlan: sighting.vlan, mode: mode))
            if !server.seenBy.contains(host) { server.seenBy.append(host) }
            server.answeredProbe = server.answeredProbe || sighting.answeredProbe
            server.identifier = server.identifier ?? sighting.identifier
            servers[key] = server
        }
        return servers.values.map { var server = $0; server.seenBy.sort(); return server }
            .sorted { ($0.vlan, $0.mac.value) < ($1.vlan, $1.mac.value) }
    }

    static func vid(_ vlan: Int) -> String { vlan == 0 ? "untagged" : "VID \(vlan)" }

    /// One sentence per server that is not the front end's: rogue ones on instance networks, the others listed.
    public static func findings(_ servers: [Server], hosts: [String]) -> [String] {
        servers.filter { !$0.allowed }.map { server in
            let address = "\(server.mac) (\(server.identifier.map { "\($0)" } ?? "\(server.ip)"))"
            let seen = "seen by \(server.seenBy.joined(separator: ", "))"
            let missing = hosts.filter { !server.seenBy.contains($0) }
            // A host that does not see a server's broadcast replies is often the one it sits behind: its own
            // packet socket sees them leave, not arrive.
            let behind = missing.count == 1 && server.seenBy.count >= 2 ? "; not seen by \(missing[0]), which it may sit behind" : ""
            let offers = server.answeredProbe ? "offers addresses to unknown clients" : "answers DHCP clients"
            if server.rogue {
                return "\(vid(server.vlan)): a DHCP server other than the front end's \(offers): \(address), \(seen)\(behind): a rogue server on an instance network (an instance running its own, or a misplaced port)"
            }
            return "\(vid(server.vlan)): another DHCP server \(offers): \(address), \(seen)\(behind) (not an instance network here: listed, not judged)"
        }
    }
}
