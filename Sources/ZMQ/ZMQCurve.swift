import CZMQ

/// CURVE keys as Z85 text (40 characters), the form they take in key files and socket options.
public enum ZMQCurve {
    public struct KeyPair: Sendable, Equatable {
        public var publicKey: String
        public var secretKey: String
        public init(publicKey: String, secretKey: String) { self.publicKey = publicKey; self.secretKey = secretKey }
    }

    public static func generateKeyPair() throws(ZMQError) -> KeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        if zmq_curve_keypair(&publicKey, &secretKey) != 0 { throw ZMQError("zmq_curve_keypair") }
        return KeyPair(publicKey: text(publicKey), secretKey: text(secretKey))
    }

    /// The public key that belongs to a secret key.
    public static func publicKey(fromSecret secret: String) throws(ZMQError) -> String {
        guard isZ85Key(secret) else { throw ZMQError("zmq_curve_public", code: EINVAL) }
        var publicKey = [CChar](repeating: 0, count: 41)
        if zmq_curve_public(&publicKey, secret) != 0 { throw ZMQError("zmq_curve_public") }
        return text(publicKey)
    }

    /// Z85 text of a 32-byte binary key (as the ZAP handler receives it).
    public static func z85(_ binary: [UInt8]) -> String? {
        guard binary.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard binary.withUnsafeBufferPointer({ zmq_z85_encode(&out, $0.baseAddress, 32) }) != nil else { return nil }
        return text(out)
    }

    /// Whether `key` is 40 characters of the Z85 alphabet.
    public static func isZ85Key(_ key: String) -> Bool {
        let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
        return key.utf8.count == 40 && key.utf8.allSatisfy(alphabet.contains)
    }

    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
