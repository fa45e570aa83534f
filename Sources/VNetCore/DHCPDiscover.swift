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
}
