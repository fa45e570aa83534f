/// One message of ISC's OMAPI protocol, the control channel of a running dhcpd (what `omshell` speaks), as
/// bytes and back. The layout is ISC dhcp's omapip/protocol.c: a 24-byte header (authenticator id, signature
/// length, opcode, object handle, transaction id, id of the message answered), the message's own name/value
/// pairs and then the object's, each list ended by a zero-length name, and the signature. Every integer is
/// big-endian; a value is bytes (an integer value is four of them).
///
/// The signature is HMAC over everything but the authenticator id and the signature itself, under the key
/// the authenticator id was given for on this connection (`OMAPISession`). A message from the wire is
/// decoded with every length checked against what arrived, so a short or hostile stream is an error or a
/// wait for more bytes, never a read past the buffer.
public struct OMAPIMessage: Sendable, Equatable {
    public enum Opcode: UInt32, Sendable {
        case open = 1, refresh = 2, update = 3, notify = 4, status = 5, delete = 6
    }

    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { "malformed OMAPI message: \(reason)" }
    }

    /// The protocol version and header size both ends announce first (`omapi_protocol_send_intro`).
    public static let protocolVersion: UInt32 = 100
    public static let headerSize: UInt32 = 24
    public static var introduction: [UInt8] { bigEndian(protocolVersion) + bigEndian(headerSize) }

    /// Longest name or value accepted from the wire: dhcpd's largest values (statements) are far shorter.
    public static let longestValue = 1 << 20

    public var authenticator: UInt32 = 0
    public var opcode: Opcode
    public var handle: UInt32 = 0
    public var id: UInt32 = 0
    public var answering: UInt32 = 0
    public var values: [(String, [UInt8])] = []
    public var object: [(String, [UInt8])] = []
    public var signature: [UInt8] = []

    public init(opcode: Opcode, handle: UInt32 = 0, values: [(String, [UInt8])] = [], object: [(String, [UInt8])] = []) {
        self.opcode = opcode; self.handle = handle; self.values = values; self.object = object
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.authenticator == b.authenticator && a.opcode == b.opcode && a.handle == b.handle && a.id == b.id
            && a.answering == b.answering && a.signature == b.signature
            && a.values.elementsEqual(b.values, by: ==) && a.object.elementsEqual(b.object, by: ==)
    }

    public func value(_ name: String) -> [UInt8]? { values.first { $0.0 == name }?.1 }
    public func objectValue(_ name: String) -> [UInt8]? { object.first { $0.0 == name }?.1 }

    /// A four-byte value as the integer it carries (how dhcpd sends `result`, flags and types).
    public static func integer(_ bytes: [UInt8]?) -> UInt32? {
        guard let bytes, bytes.count == 4 else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    public static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    /// The bytes the signature covers: the header after the authenticator id, with `signatureLength` as the
    /// length field, and both value lists.
    func signedPart(signatureLength: Int) -> [UInt8] {
        var out: [UInt8] = []
        out += Self.bigEndian(UInt32(signatureLength))
        out += Self.bigEndian(opcode.rawValue) + Self.bigEndian(handle) + Self.bigEndian(id) + Self.bigEndian(answering)
        for list in [values, object] {
            for (name, value) in list {
                let nameBytes = Array(name.utf8)
                out += [UInt8(nameBytes.count >> 8), UInt8(truncatingIfNeeded: nameBytes.count)] + nameBytes
                out += Self.bigEndian(UInt32(value.count)) + value
            }
            out += [0, 0]
        }
        return out
    }

    /// The message as sent: unsigned when `key` is nil, else signed with it under `authenticator`.
    public func encoded(signingWith key: [UInt8]?) -> [UInt8] {
        guard let key else { return Self.bigEndian(0) + signedPart(signatureLength: 0) }
        let signed = signedPart(signatureLength: SHA256.digestLength)
        return Self.bigEndian(authenticator) + signed + SHA256.hmac(key: key, message: signed)
    }

    /// Whether the signature is `key`'s over this message (false for an unsigned message).
    public func isSigned(by key: [UInt8]) -> Bool {
        !signature.isEmpty && SHA256.hmac(key: key, message: signedPart(signatureLength: signature.count)) == signature
    }

    /// Decodes one message from the front of `bytes`: the message and how many bytes it took, or nil when
    /// more bytes are needed.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(DecodeError) -> (message: OMAPIMessage, length: Int)? {
        var reader = Reader(bytes: bytes)
        guard let authenticator = reader.integer(), let signatureLength = reader.integer(), let op = reader.integer(),
              let handle = reader.integer(), let id = reader.integer(), let answering = reader.integer() else { return nil }
        guard let opcode = Opcode(rawValue: op) else { throw DecodeError(reason: "unknown opcode \(op)") }
        guard signatureLength <= 64 else { throw DecodeError(reason: "signature of \(signatureLength) bytes") }
        var message = OMAPIMessage(opcode: opcode, handle: handle)
        message.authenticator = authenticator; message.id = id; message.answering = answering
        for list in 0..<2 {
            while true {
                guard let nameLength = reader.short() else { return nil }
                if nameLength == 0 { break }
                guard let name = reader.take(Int(nameLength)) else { return nil }
                guard let valueLength = reader.integer() else { return nil }
                guard valueLength <= longestValue else { throw DecodeError(reason: "value of \(valueLength) bytes") }
                guard let value = reader.take(Int(valueLength)) else { return nil }
                guard let text = String(validating: name, as: UTF8.self) else { throw DecodeError(reason: "a name that is not text") }
                if list == 0 { message.values.append((text, Array(value))) } else { message.object.append((text, Array(value))) }
                guard message.values.count + message.object.count <= 1024 else { throw DecodeError(reason: "more than 1024 values") }
            }
        }
        guard let signature = reader.take(Int(signatureLength)) else { return nil }
        message.signature = Array(signature)
        return (message, reader.offset - bytes.startIndex)
    }

    struct Reader {
        let bytes: ArraySlice<UInt8>
        var offset: Int
        init(bytes: ArraySlice<UInt8>) { self.bytes = bytes; offset = bytes.startIndex }
        mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, bytes.endIndex - offset >= count else { return nil }
            defer { offset += count }
            return bytes[offset..<(offset + count)]
        }
        mutating func integer() -> UInt32? { take(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } } }
        mutating func short() -> UInt16? { take(2).map { UInt16($0[$0.startIndex]) << 8 | UInt16($0[$0.startIndex + 1]) } }
    }
}
