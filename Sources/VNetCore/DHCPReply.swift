/// A DHCP server's reply as seen on the wire (RFC 2131), read from an IPv4 packet: how SYSTEM mode learns the
/// address an outside DHCP server gave an instance, without taking part in DHCP.
///
/// Only what learning needs is read, and every length is checked: the packet comes from the network.
public struct DHCPReply: Sendable, Equatable {
    public enum MessageType: UInt8, Sendable {
        case offer = 2, ack = 5, nak = 6
    }

    /// The client's hardware address (chaddr).
    public var mac: MACAddress
    /// The address given to the client (yiaddr).
    public var address: IPv4Address
    public var messageType: MessageType
    /// Option 51, when present.
    public var leaseSeconds: UInt32?
    /// Option 54 (the server identifier), when present.
    public var server: IPv4Address?

    static let magicCookie: [UInt8] = [99, 130, 83, 99]

    /// Parses an IPv4 packet carrying UDP from port 67 to port 68 and a BOOTREPLY over Ethernet; nil for
    /// anything else or anything malformed.
    public static func parse(ipPacket packet: [UInt8]) -> DHCPReply? {
        guard packet.count >= 20, packet[0] >> 4 == 4 else { return nil }
        let headerLength = Int(packet[0] & 0x0f) * 4
        let totalLength = Int(packet[2]) << 8 | Int(packet[3])
        guard headerLength >= 20, totalLength <= packet.count, packet[9] == 17, totalLength >= headerLength + 8 else { return nil }
        let udp = headerLength
        let sourcePort = Int(packet[udp]) << 8 | Int(packet[udp + 1])
        let destinationPort = Int(packet[udp + 2]) << 8 | Int(packet[udp + 3])
        guard sourcePort == 67, destinationPort == 68 else { return nil }
        return parse(bootp: packet[(udp + 8)..<totalLength])
    }

    /// Parses a BOOTREPLY as a UDP socket receives it (the datagram's payload); nil for anything else.
    public static func parse(bootp message: ArraySlice<UInt8>) -> DHCPReply? {
        let packet = message
        let bootp = message.startIndex
        let end = message.endIndex
        // op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr[16], sname[64],
        // file[128], magic cookie: 240 bytes before the options.
        guard end - bootp >= 240, packet[bootp] == 2, packet[bootp + 1] == 1, packet[bootp + 2] == 6,
              Array(packet[(bootp + 236)..<(bootp + 240)]) == magicCookie else { return nil }
        let address = IPv4Address(packet[bootp + 16], packet[bootp + 17], packet[bootp + 18], packet[bootp + 19])
        var mac: UInt64 = 0
        for byte in packet[(bootp + 28)..<(bootp + 34)] { mac = mac << 8 | UInt64(byte) }
        var type: MessageType?
        var lease: UInt32?
        var server: IPv4Address?
        var index = bootp + 240
        while index < end {
            let code = packet[index]
            if code == 255 { break }
            if code == 0 { index += 1; continue }
            guard index + 1 < end else { return nil }
            let length = Int(packet[index + 1])
            let value = index + 2
            guard value + length <= end else { return nil }
            switch (code, length) {
            case (53, 1): type = MessageType(rawValue: packet[value])
            case (51, 4): lease = UInt32(packet[value]) << 24 | UInt32(packet[value + 1]) << 16 | UInt32(packet[value + 2]) << 8 | UInt32(packet[value + 3])
            case (54, 4): server = IPv4Address(packet[value], packet[value + 1], packet[value + 2], packet[value + 3])
            default: break
            }
            index = value + length
        }
        guard let type else { return nil }
        return DHCPReply(mac: MACAddress(mac), address: address, messageType: type, leaseSeconds: lease, server: server)
    }
}

/// An instance's address as a node learned it (SYSTEM mode: from the DHCP reply that gave it).
public struct LearnedAddress: Sendable, Hashable, Comparable {
    public var instance: InstanceID
    public var mac: MACAddress
    public var address: IPv4Address

    public init(instance: InstanceID, mac: MACAddress, address: IPv4Address) {
        self.instance = instance
        self.mac = mac
        self.address = address
    }

    public static func < (a: LearnedAddress, b: LearnedAddress) -> Bool { a.instance < b.instance }
}
