import SwiftProtobuf
import VNetProto

/// Encodes and checks bus frames. Every peer decodes through here, so that a frame from another protocol
/// version or another cluster, an oversized or malformed frame, is refused the same way everywhere.
public struct EnvelopeCodec: Sendable {
    public static let protocolVersion: UInt32 = 1

    public enum Refusal: String, Error, Sendable, CaseIterable {
        case oversized, malformed, wrongVersion, wrongCluster, emptyBody
    }

    public let clusterID: String
    public let maxFrameBytes: Int

    public init(clusterID: String, maxFrameBytes: Int = 64 << 20) {
        self.clusterID = clusterID
        self.maxFrameBytes = maxFrameBytes
    }

    public func encode(_ body: Vnet_V1_Envelope.OneOf_Body) -> [UInt8] {
        var envelope = Vnet_V1_Envelope()
        envelope.protocolVersion = Self.protocolVersion
        envelope.clusterID = clusterID
        envelope.body = body
        // Serializing a message with only known fields cannot fail.
        return (try? envelope.serializedBytes()) ?? []
    }

    public func decode(_ bytes: [UInt8]) -> Result<Vnet_V1_Envelope.OneOf_Body, Refusal> {
        guard bytes.count <= maxFrameBytes else { return .failure(.oversized) }
        guard let envelope = try? Vnet_V1_Envelope(serializedBytes: bytes) else { return .failure(.malformed) }
        guard envelope.protocolVersion == Self.protocolVersion else { return .failure(.wrongVersion) }
        guard envelope.clusterID == clusterID else { return .failure(.wrongCluster) }
        guard let body = envelope.body else { return .failure(.emptyBody) }
        return .success(body)
    }
}

/// Counts of refused frames by reason, for status and metrics.
public struct RefusalCounters: Sendable {
    public private(set) var counts: [EnvelopeCodec.Refusal: UInt64] = [:]
    public private(set) var unauthorized: UInt64 = 0
    public init() {}
    public mutating func count(_ refusal: EnvelopeCodec.Refusal) { counts[refusal, default: 0] += 1 }
    public mutating func countUnauthorized() { unauthorized += 1 }
    public var total: UInt64 { counts.values.reduce(0, +) }
}
