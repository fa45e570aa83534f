/// A 48-bit Ethernet address, printed lower case with colons as iproute2 and dhcpd print it.
public struct MACAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: UInt64  // low 48 bits used

    public init(_ value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    /// Parses six colon-separated pairs of hex digits, either case ("AA:dd:11:ce:ff:ed").
    public init?(_ text: some StringProtocol) {
        guard let bytes = parseHexPairs(text, count: 6) else { return nil }
        self.init(bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    public var bytes: [UInt8] { (0..<6).map { UInt8((value >> UInt64(40 - 8 * $0)) & 0xff) } }

    /// Multicast MACs (low bit of the first octet) cannot be assigned to an interface.
    public var isMulticast: Bool { (value >> 40) & 1 == 1 }
    public var isZero: Bool { value == 0 }

    /// The MAC for the host side of a tap that carries a guest with this MAC: the same address with the first
    /// octet set to `fe` (what libvirt gives its taps). A Linux bridge treats each port's own MAC as local, so a
    /// tap carrying the guest's own MAC would swallow every unicast frame meant for the guest; `fe` is
    /// locally administered and unicast, and sorts above the MACs the cluster hands out (VNET_MACPREFIX d0:0d by
    /// default), so a bridge that takes the lowest of its ports' MACs does not take the tap's.
    public var tapHostSide: MACAddress { MACAddress(0xFE00_0000_0000 | (value & 0x00FF_FFFF_FFFF)) }

    public static func < (lhs: MACAddress, rhs: MACAddress) -> Bool { lhs.value < rhs.value }

    public var description: String {
        var out: [UInt8] = []
        out.reserveCapacity(17)
        append(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The colon-separated form appended to `bytes` (for renderers that build large texts as bytes).
    public func append(to bytes: inout [UInt8]) {
        for index in 0..<6 {
            if index > 0 { bytes.append(UInt8(ascii: ":")) }
            let byte = UInt8((value >> UInt64(40 - 8 * index)) & 0xff)
            bytes.append(Self.hexDigits[Int(byte >> 4)])
            bytes.append(Self.hexDigits[Int(byte & 0xf)])
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}

/// The two leading octets of every MAC the cluster hands out (VNET_MACPREFIX, default d0:0d).
public struct MACPrefix: Hashable, Sendable, CustomStringConvertible {
    public let high: UInt16

    public static let eucalyptusDefault = MACPrefix(high: 0xD00D)

    public init(high: UInt16) { self.high = high }

    public init?(_ text: some StringProtocol) {
        guard let bytes = parseHexPairs(text, count: 2) else { return nil }
        high = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
    }

    /// Eucalyptus' rule: the prefix followed by the four byte pairs of the 8-hex-digit instance id.
    public func mac(for instance: InstanceID) -> MACAddress {
        MACAddress(UInt64(high) << 32 | UInt64(instance.number))
    }

    public var description: String {
        String(MACAddress(UInt64(high) << 32).description.prefix(5))
    }
}

/// `count` colon-separated two-digit hex octets, or nil.
private func parseHexPairs(_ text: some StringProtocol, count: Int) -> [UInt8]? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == count else { return nil }
    var bytes: [UInt8] = []
    for part in parts {
        guard part.utf8.count == 2, part.allSatisfy(\.isHexDigit), let byte = UInt8(part, radix: 16) else {
            return nil
        }
        bytes.append(byte)
    }
    return bytes
}
