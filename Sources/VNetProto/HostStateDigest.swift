import SwiftProtobuf

extension Vnet_V1_HostState {
    /// FNV-1a of the serialized state: equal states give equal digests on every peer and across restarts
    /// (the serialization of a message with only known fields is deterministic here).
    public var digest: UInt64 {
        let bytes = (try? serializedBytes() as [UInt8]) ?? []
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }
}
