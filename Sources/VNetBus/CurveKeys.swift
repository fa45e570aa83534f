import Foundation
import ZMQ

/// CURVE key files and the socket options that use them.
///
/// Layout of a key directory (made by `vnetctl keys generate`):
///   coordinator.key, coordinator.pub   the coordinator's pair
///   nodes/NODE.key, nodes/NODE.pub      one pair per node; the .pub files are the node allow-list, and the
///                                       file name is the node id a key stands for
///   admins/NAME.key, admins/NAME.pub    vnetctl's pairs; the .pub files are the admin allow-list
/// Secret keys are written mode 0600. A .key file holds the secret key in Z85 on one line.
public enum CurveKeys {
    public static func readKey(_ path: String) throws(BusError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw BusError("cannot read key file \(path)") }
        let key = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard ZMQCurve.isZ85Key(key) else { throw BusError("\(path) does not hold a CURVE key (40 Z85 characters)") }
        return key
    }

    /// Reads a secret key file and derives its public key.
    public static func readPair(secretKeyFile path: String) throws(BusError) -> ZMQCurve.KeyPair {
        let secret = try readKey(path)
        do { return .init(publicKey: try ZMQCurve.publicKey(fromSecret: secret), secretKey: secret) } catch {
            throw BusError("\(path): \(error)")
        }
    }

    /// Writes NAME.key (0600) and NAME.pub in `directory`; refuses to overwrite.
    @discardableResult
    public static func generate(in directory: String, name: String) throws(BusError) -> ZMQCurve.KeyPair {
        let pair: ZMQCurve.KeyPair
        do { pair = try ZMQCurve.generateKeyPair() } catch { throw BusError("cannot generate a key: \(error)") }
        let manager = FileManager.default
        do { try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            throw BusError("cannot create \(directory): \(error)")
        }
        let secretPath = "\(directory)/\(name).key", publicPath = "\(directory)/\(name).pub"
        for path in [secretPath, publicPath] where manager.fileExists(atPath: path) {
            throw BusError("\(path) exists; remove it first to replace the key")
        }
        guard manager.createFile(atPath: secretPath, contents: Data((pair.secretKey + "\n").utf8), attributes: [.posixPermissions: 0o600]),
              manager.createFile(atPath: publicPath, contents: Data((pair.publicKey + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw BusError("cannot write \(secretPath)")
        }
        return pair
    }

    /// Public key -> name for every NAME.pub in `directory` (an absent directory is an empty list).
    public static func allowList(_ directory: String) throws(BusError) -> [String: String] {
        var result: [String: String] = [:]
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [:] }
        for file in names.sorted() where file.hasSuffix(".pub") {
            result[try readKey("\(directory)/\(file)")] = String(file.dropLast(4))
        }
        return result
    }
}

/// How a socket is secured: CURVE as server or client, or plain text (`--insecure`, development only).
public enum SocketSecurity: Sendable {
    case insecure
    case curveServer(secretKey: String, zapDomain: String)
    case curveClient(keys: ZMQCurve.KeyPair, serverPublicKey: String)

    public func apply(to socket: ZMQSocket) throws(ZMQError) {
        switch self {
        case .insecure:
            break
        case .curveServer(let secret, let domain):
            try socket.set(.curveServer, 1)
            try socket.set(.curveSecretKey, secret)
            try socket.set(.zapDomain, domain)
        case .curveClient(let keys, let server):
            try socket.set(.curveServerKey, server)
            try socket.set(.curvePublicKey, keys.publicKey)
            try socket.set(.curveSecretKey, keys.secretKey)
        }
    }
}
