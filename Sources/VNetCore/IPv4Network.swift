/// An IPv4 network: an aligned base address and a prefix length.
///
/// Construction checks alignment, so a value of this type is always a real network; the config validator
/// reports a misaligned VNET_SUBNET before it ever becomes one.
public struct IPv4Network: Hashable, Sendable, CustomStringConvertible {
    public let address: IPv4Address
    public let prefixLength: Int

    /// Nil when `prefixLength` is outside 0...32 or `address` has host bits set.
    public init?(address: IPv4Address, prefixLength: Int) {
        guard (0...32).contains(prefixLength) else { return nil }
        guard address.value & ~IPv4Network.maskValue(prefixLength) == 0 else { return nil }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses "a.b.c.d/n" or a bare "a.b.c.d" (a /32).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPv4Address(parts[0]) else { return nil }
        var length = 32
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].count <= 2, parts[1].allSatisfy(\.isASCII),
                  let parsed = Int(parts[1]) else { return nil }
            length = parsed
        }
        self.init(address: address, prefixLength: length)
    }

    static func maskValue(_ prefixLength: Int) -> UInt32 {
        prefixLength == 0 ? 0 : UInt32.max << UInt32(32 - prefixLength)
    }

    /// The prefix length of a netmask, or nil when its one-bits are not contiguous (255.0.255.0).
    public static func prefixLength(ofNetmask mask: IPv4Address) -> Int? {
        let ones = mask.value.nonzeroBitCount
        return maskValue(ones) == mask.value ? ones : nil
    }

    public var netmask: IPv4Address { IPv4Address(IPv4Network.maskValue(prefixLength)) }
    /// Number of addresses, network and broadcast included (a UInt64 because a /0 holds 2^32).
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }
    public var broadcast: IPv4Address { IPv4Address(address.value | ~IPv4Network.maskValue(prefixLength)) }
    public var last: IPv4Address { broadcast }

    public func contains(_ candidate: IPv4Address) -> Bool {
        candidate.value & IPv4Network.maskValue(prefixLength) == address.value
    }

    public func overlaps(_ other: IPv4Network) -> Bool {
        contains(other.address) || other.contains(address)
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
