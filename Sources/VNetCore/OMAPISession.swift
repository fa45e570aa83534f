/// The client's side of one OMAPI connection to dhcpd, as a value: the requests it sends (host entries made,
/// looked up and deleted, as omshell does them) and what it makes of each answer. The driver that owns the
/// socket (`OMAPIClient` in VNetLinux) only moves the bytes.
///
/// The conversation, from ISC dhcp's omapip/message.c: the client opens an `authenticator` object naming the
/// key (unsigned: the only message dhcpd takes unsigned once it has a key); dhcpd answers with the object's
/// handle, and from then on every request carries that handle as its authenticator id and a signature under
/// the key. dhcpd checks the signature and answers a wrong one with a status of "invalid key"; its own
/// answers are signed the same way and are refused here if they are not.
public struct OMAPISession: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// dhcpd answered with a status other than success: its result code and what it said.
        case refused(code: UInt32, message: String)
        /// An answer that is not one to the request sent, or not signed by the key.
        case protocolViolation(String)

        public var description: String {
            switch self {
            case .refused(let code, let message): "dhcpd refused the request: \(message.isEmpty ? "result \(code)" : message) (result \(code))"
            case .protocolViolation(let reason): "OMAPI: \(reason)"
            }
        }

        /// ISC's result codes (isc/result.h) that the host operations act on.
        public static let exists: UInt32 = 18, notFound: UInt32 = 23
        public var code: UInt32? { if case .refused(let code, _) = self { code } else { nil } }
    }

    public let keyName: String
    let secret: [UInt8]
    /// The handle dhcpd gave the authenticator; nil until `authenticated(by:)`.
    public private(set) var authenticator: UInt32?
    private var nextID: UInt32 = 1

    public init(keyName: String = DHCPDControl.keyName, secret: [UInt8]) {
        self.keyName = keyName; self.secret = secret
    }

    /// The request to open the authenticator: its id (for `answer(_:to:)`) and bytes.
    public mutating func openAuthenticator() -> (id: UInt32, bytes: [UInt8]) {
        send(OMAPIMessage(opcode: .open, values: [("type", Array("authenticator".utf8))],
                          object: [("name", Array(keyName.utf8)), ("algorithm", Array(DHCPDControl.wireAlgorithm.utf8))]))
    }

    /// Takes dhcpd's answer to `openAuthenticator`: the session is authenticated from here on.
    public mutating func authenticated(by reply: OMAPIMessage, to id: UInt32) throws(Failure) {
        let object = try answer(reply, to: id)
        guard object.opcode == .update, object.handle != 0 else {
            throw .protocolViolation("dhcpd answered the authenticator with opcode \(object.opcode) and no handle")
        }
        authenticator = object.handle
    }

    /// A new host entry, refused by dhcpd if one of that name exists (`exclusive`).
    public mutating func createHost(_ host: DHCPDConfig.Host) -> (id: UInt32, bytes: [UInt8]) {
        send(OMAPIMessage(opcode: .open, values: [("type", Array("host".utf8)), ("create", OMAPIMessage.bigEndian(1)), ("exclusive", OMAPIMessage.bigEndian(1))],
                          object: [("name", Array(host.declarationName.utf8)), ("hardware-address", host.mac.bytes),
                                   ("hardware-type", OMAPIMessage.bigEndian(1)), ("ip-address", OMAPIMessage.bigEndian(host.address.value))]))
    }

    /// The host entry of this name, looked up (the answer carries its handle and values).
    public mutating func findHost(named name: String) -> (id: UInt32, bytes: [UInt8]) {
        send(OMAPIMessage(opcode: .open, values: [("type", Array("host".utf8))], object: [("name", Array(name.utf8))]))
    }

    /// Deletes the object `handle` names (from a `findHost` answer).
    public mutating func delete(handle: UInt32) -> (id: UInt32, bytes: [UInt8]) {
        send(OMAPIMessage(opcode: .delete, handle: handle))
    }

    /// dhcpd's answer to request `id`, checked: it answers that request, it is not a failed status, and once
    /// the session is authenticated it is signed by the key (dhcpd answers the authenticator itself
    /// unsigned). A refusal is believed signed or not: dhcpd answers a request with a bad signature with an
    /// unsigned "invalid key", and the worst a forged refusal can do is make the manager restart dhcpd.
    @discardableResult
    public func answer(_ reply: OMAPIMessage, to id: UInt32) throws(Failure) -> OMAPIMessage {
        guard reply.answering == id else { throw .protocolViolation("an answer to request \(reply.answering) while waiting for \(id)") }
        if reply.opcode == .status {
            let code = OMAPIMessage.integer(reply.value("result")) ?? UInt32.max
            if code != 0 {
                let text = reply.value("message").map { String(decoding: $0, as: UTF8.self) } ?? ""
                throw .refused(code: code, message: text)
            }
        }
        if authenticator != nil || !reply.signature.isEmpty {
            guard reply.isSigned(by: secret) else { throw .protocolViolation("an answer not signed by the key \(keyName) (is it dhcpd's key?)") }
        }
        return reply
    }

    /// The host an answer to `findHost` describes.
    public static func host(in reply: OMAPIMessage) -> DHCPDConfig.Host? {
        guard let hardware = reply.objectValue("hardware-address"), hardware.count == 6,
              let address = reply.objectValue("ip-address"), address.count == 4 else { return nil }
        let mac = hardware.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return DHCPDConfig.Host(mac: MACAddress(mac), address: IPv4Address(address[0], address[1], address[2], address[3]))
    }

    private mutating func send(_ request: OMAPIMessage) -> (id: UInt32, bytes: [UInt8]) {
        var message = request
        message.id = nextID
        nextID &+= 1
        if let authenticator { message.authenticator = authenticator }
        return (message.id, message.encoded(signingWith: authenticator == nil ? nil : secret))
    }
}
