import SwiftProtobuf
import VNetCore

extension Vnet_V1_HostNetworkState {
    /// FNV-1a of the serialized state: equal states give equal digests on every peer and across restarts
    /// (the serialization of a message with only known fields is deterministic here).
    public var digest: UInt64 {
        FNV1a.hash((try? serializedBytes() as [UInt8]) ?? [])
    }
}
