import VNetBus
import ZMQ

/// ZeroMQ's authentication protocol (ZAP, RFC 27): libzmq asks, on `inproc://zeromq.zap.01`, whether a CURVE
/// client key may connect, and attaches the User-Id we answer to every message from that connection. That
/// is how a message is tied to a node: the User-Id of the "nodes" domain is the node id its key file names.
struct ZAPHandler {
    static let endpoint = "inproc://zeromq.zap.01"
    let keysDirectory: String
    private(set) var nodeKeys: [String: String] = [:]
    private(set) var adminKeys: [String: String] = [:]
    private(set) var refused: UInt64 = 0

    init(keysDirectory: String) throws(BusError) {
        self.keysDirectory = keysDirectory
        try reload()
    }

    mutating func reload() throws(BusError) {
        nodeKeys = try CurveKeys.allowList("\(keysDirectory)/nodes")
        adminKeys = try CurveKeys.allowList("\(keysDirectory)/admins")
    }

    /// Answers one ZAP request: [version, request id, domain, address, identity, mechanism, key...].
    mutating func answer(_ request: [[UInt8]]) -> [[UInt8]] {
        guard request.count >= 6 else { return [] }
        let version = request[0], requestID = request[1]
        let domain = String(decoding: request[2], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        func reply(_ code: String, _ text: String, _ user: String) -> [[UInt8]] {
            [version, requestID, Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
        }
        guard mechanism == "CURVE", request.count >= 7, let key = ZMQCurve.z85(request[6]) else {
            refused += 1
            return reply("400", "CURVE required", "")
        }
        // A key not known yet may have been added since start: look again before refusing.
        if nodeKeys[key] == nil, adminKeys[key] == nil { try? reload() }
        switch domain {
        case "nodes":
            if let node = nodeKeys[key] { return reply("200", "OK", node) }
        case "control":
            if let admin = adminKeys[key] { return reply("200", "OK", "admin:" + admin) }
        default:
            break
        }
        refused += 1
        return reply("400", "key not allowed", "")
    }
}
