/// A DHCPDISCOVER (RFC 2131) as a client with `mac` sends it, with the broadcast flag set so the server's
/// offer comes back to the limited broadcast address: what a probe sends to learn whether, and how fast, a
/// DHCP server offers that MAC its address. The payload of a UDP datagram from port 68 to port 67.
public enum DHCPDiscover {
    public static func bytes(mac: MACAddress, transaction: UInt32) -> [UInt8] {
        var message = [UInt8](repeating: 0, count: 240)
        message[0] = 1; message[1] = 1; message[2] = 6  // BOOTREQUEST, Ethernet, 6-byte addresses
        message.replaceSubrange(4..<8, with: [UInt8(transaction >> 24), UInt8(truncatingIfNeeded: transaction >> 16), UInt8(truncatingIfNeeded: transaction >> 8), UInt8(truncatingIfNeeded: transaction)])
        message[10] = 0x80  // broadcast
        message.replaceSubrange(28..<34, with: mac.bytes)
        message.replaceSubrange(236..<240, with: DHCPReply.magicCookie)
        message += [53, 1, 1]           // DHCPDISCOVER
        message += [55, 3, 1, 3, 6]     // asks for mask, router, DNS
        message.append(255)
        return message
    }

    /// The same DISCOVER as a whole Ethernet frame, for a raw socket that sends it on a VID without a VLAN
    /// device: from `source` (the host's own MAC, so a switch with port security learns nothing new) to
    /// ff:ff:ff:ff:ff:ff, [802.1Q tag], IPv4 0.0.0.0 -> 255.255.255.255, UDP 68 -> 67 (no UDP checksum, as
    /// IPv4 allows), asking for `client`'s address.
    public static func frame(source: MACAddress, client: MACAddress, vlan: Int, transaction: UInt32) -> [UInt8] {
        let message = bytes(mac: client, transaction: transaction)
        var frame: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + source.bytes
        if vlan != 0 { frame += [0x81, 0x00, UInt8(vlan >> 8 & 0x0f), UInt8(vlan & 0xff)] }
        frame += [0x08, 0x00]
        let total = 20 + 8 + message.count
        var ip: [UInt8] = [0x45, 0x10, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0, 0, 64, 17, 0, 0,
                           0, 0, 0, 0, 255, 255, 255, 255]
        var sum: UInt32 = 0
        for index in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[index]) << 8 | UInt32(ip[index + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        ip[10] = UInt8(checksum >> 8)
        ip[11] = UInt8(checksum & 0xff)
        let udpLength = 8 + message.count
        frame += ip + [0, 68, 0, 67, UInt8(udpLength >> 8), UInt8(udpLength & 0xff), 0, 0] + message
        return frame
    }
}
