/// An IPv4 address as a 32-bit number, so that network arithmetic is integer arithmetic.
///
/// Parsing is strict on purpose: exactly four decimal octets, no leading zeros. `inet_aton` would read
/// "010.0.0.1" as octal and "10.1" as 10.0.0.1; an operator who typed either almost certainly meant something
/// else, and a network plan built on a misread address is worse than an error.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text; returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        var octets: [UInt32] = []
        octets.reserveCapacity(4)
        var current: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits == 1 && leadingZero { return nil }
                if digits == 0 && byte == UInt8(ascii: "0") { leadingZero = true }
                current = current * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                if digits > 3 || current > 255 { return nil }
            case UInt8(ascii: "."):
                if digits == 0 || octets.count == 3 { return nil }
                octets.append(current)
                current = 0; digits = 0; leadingZero = false
            default:
                return nil
            }
        }
        if digits == 0 || octets.count != 3 { return nil }
        octets.append(current)
        value = octets[0] << 24 | octets[1] << 16 | octets[2] << 8 | octets[3]
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }

    /// The address `offset` places further on; callers keep within the network they are carving.
    public func advanced(by offset: UInt32) -> IPv4Address { IPv4Address(value &+ offset) }

    public var octets: (UInt8, UInt8, UInt8, UInt8) {
        (UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff))
    }

    /// Hand-rolled rather than string interpolation: rendering a 100 000-host dhcpd.conf formats hundreds of
    /// thousands of addresses, and this is several times faster.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(15)
        append(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The dotted quad appended to `bytes` (for renderers that build large texts as bytes).
    public func append(to bytes: inout [UInt8]) {
        appendDecimal(UInt8(value >> 24), to: &bytes)
        bytes.append(UInt8(ascii: "."))
        appendDecimal(UInt8((value >> 16) & 0xff), to: &bytes)
        bytes.append(UInt8(ascii: "."))
        appendDecimal(UInt8((value >> 8) & 0xff), to: &bytes)
        bytes.append(UInt8(ascii: "."))
        appendDecimal(UInt8(value & 0xff), to: &bytes)
    }

    /// Addresses that can never be a host's unicast address (this network, loopback, link-local, multicast,
    /// reserved, limited broadcast).
    public var isSpecialPurpose: Bool {
        let first = value >> 24
        return first == 0 || first == 127 || first >= 224 || (value >> 16) == 0xA9FE
    }
}

private func appendDecimal(_ octet: UInt8, to bytes: inout [UInt8]) {
    let zero = UInt8(ascii: "0")
    if octet >= 100 { bytes.append(zero + octet / 100) }
    if octet >= 10 { bytes.append(zero + (octet / 10) % 10) }
    bytes.append(zero + octet % 10)
}
