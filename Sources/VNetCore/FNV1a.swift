/// FNV-1a, 64 bits: small and stable across runs, peers and platforms (Swift's Hasher is seeded per process),
/// for names derived from input (hashed chain names) and digests of serialized states. Not for security.
public enum FNV1a {
    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}
