/// The hot path of the bus: Intent envelopes framed by hand around a host state serialized once.
///
/// Protobuf's wire format is a concatenation of fields, so an envelope can be written as a few tags and
/// varints around bytes that were serialized when the host's state last changed; the result is byte for byte
/// what SwiftProtobuf writes (a test checks it). The other way, `peek` reads the envelope's header and the
/// Intent's small fields without decoding the host state, which is all an agent needs to drop an update
/// it already has.
public enum IntentFrame {
    public struct Header: Equatable, Sendable {
        public var nodeID: String
        public var epoch: UInt64
        public var revision: UInt64
        public var previousRevision: UInt64
        public var clusterRevision: UInt64

        public init(nodeID: String, epoch: UInt64, revision: UInt64, previousRevision: UInt64, clusterRevision: UInt64) {
            self.nodeID = nodeID; self.epoch = epoch; self.revision = revision
            self.previousRevision = previousRevision; self.clusterRevision = clusterRevision
        }
    }

    public static func envelope(clusterID: String, header: Header, stateBytes: [UInt8]) -> [UInt8] {
        var inner: [UInt8] = []
        inner.reserveCapacity(stateBytes.count + header.nodeID.utf8.count + 48)
        appendString(1, header.nodeID, to: &inner)
        appendVarintField(2, header.epoch, to: &inner)
        appendVarintField(3, header.revision, to: &inner)
        appendVarintField(4, header.previousRevision, to: &inner)
        appendVarintField(5, header.clusterRevision, to: &inner)
        appendTag(6, wireType: 2, to: &inner)  // the state is always present, even when empty
        appendVarint(UInt64(stateBytes.count), to: &inner)
        inner += stateBytes
        var out: [UInt8] = []
        out.reserveCapacity(inner.count + clusterID.utf8.count + 16)
        appendVarintField(1, UInt64(EnvelopeCodec.protocolVersion), to: &out)
        appendString(2, clusterID, to: &out)
        appendTag(13, wireType: 2, to: &out)
        appendVarint(UInt64(inner.count), to: &out)
        out += inner
        return out
    }

    /// The header of a Intent envelope of this protocol version and cluster, or nil for anything else
    /// (another kind, another cluster, malformed bytes).
    public static func peek(_ frame: [UInt8], clusterID: String) -> Header? {
        var reader = Reader(bytes: frame[...])
        var version: UInt64 = 0, cluster: ArraySlice<UInt8> = [], body: ArraySlice<UInt8>?
        while !reader.atEnd {
            guard let (field, wireType) = reader.tag() else { return nil }
            switch (field, wireType) {
            case (1, 0): guard let value = reader.varint() else { return nil }; version = value
            case (2, 2): guard let value = reader.lengthDelimited() else { return nil }; cluster = value
            case (13, 2): guard let value = reader.lengthDelimited() else { return nil }; body = value
            default: guard reader.skip(wireType) else { return nil }
            }
        }
        guard version == UInt64(EnvelopeCodec.protocolVersion), cluster.elementsEqual(clusterID.utf8), let body else { return nil }
        var header = Header(nodeID: "", epoch: 0, revision: 0, previousRevision: 0, clusterRevision: 0)
        var inner = Reader(bytes: body)
        while !inner.atEnd {
            guard let (field, wireType) = inner.tag() else { return nil }
            switch (field, wireType) {
            case (1, 2):
                guard let value = inner.lengthDelimited(), let text = String(validating: value, as: UTF8.self) else { return nil }
                header.nodeID = text
            case (2, 0): guard let value = inner.varint() else { return nil }; header.epoch = value
            case (3, 0): guard let value = inner.varint() else { return nil }; header.revision = value
            case (4, 0): guard let value = inner.varint() else { return nil }; header.previousRevision = value
            case (5, 0): guard let value = inner.varint() else { return nil }; header.clusterRevision = value
            default: guard inner.skip(wireType) else { return nil }
            }
        }
        return header
    }

    static func appendTag(_ field: UInt64, wireType: UInt64, to out: inout [UInt8]) { appendVarint(field << 3 | wireType, to: &out) }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// proto3: a zero scalar is not written.
    static func appendVarintField(_ field: UInt64, _ value: UInt64, to out: inout [UInt8]) {
        guard value != 0 else { return }
        appendTag(field, wireType: 0, to: &out)
        appendVarint(value, to: &out)
    }

    static func appendString(_ field: UInt64, _ text: String, to out: inout [UInt8]) {
        guard !text.isEmpty else { return }
        appendTag(field, wireType: 2, to: &out)
        appendVarint(UInt64(text.utf8.count), to: &out)
        out += text.utf8
    }

    struct Reader {
        var bytes: ArraySlice<UInt8>
        var atEnd: Bool { bytes.isEmpty }

        mutating func varint() -> UInt64? {
            var value: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 7) {
                guard let byte = bytes.popFirst() else { return nil }
                value |= UInt64(byte & 0x7f) << UInt64(shift)
                if byte < 0x80 { return value }
            }
            return nil
        }

        mutating func tag() -> (UInt64, UInt64)? {
            guard let key = varint(), key >> 3 != 0 else { return nil }
            return (key >> 3, key & 7)
        }

        mutating func lengthDelimited() -> ArraySlice<UInt8>? {
            guard let length = varint(), length <= UInt64(bytes.count) else { return nil }
            let value = bytes.prefix(Int(length))
            bytes = bytes.dropFirst(Int(length))
            return value
        }

        mutating func skip(_ wireType: UInt64) -> Bool {
            switch wireType {
            case 0: return varint() != nil
            case 1: guard bytes.count >= 8 else { return false }; bytes = bytes.dropFirst(8); return true
            case 2: return lengthDelimited() != nil
            case 5: guard bytes.count >= 4 else { return false }; bytes = bytes.dropFirst(4); return true
            default: return false
            }
        }
    }
}
