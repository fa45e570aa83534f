import Foundation
import VNetCore
import VNetProto
import ZMQ

/// One request, one reply, over a DEALER socket, with a deadline: what vnetctl and the EC2 gateway use for
/// control requests. A DEALER (not REQ) so that a lost reply never wedges the socket; replies are matched by
/// request id.
///
/// Given several coordinators (a PostgreSQL store shared, one leading), it follows the leader: a standby's
/// "not the leader; the leader is X" sends the request to X; "no coordinator leads now" (a failover under
/// way) tries again shortly; a coordinator that does not answer within `attemptTimeout` is left for the next
/// in the list. A request sent again after silence may have been carried out by the silent one: a refusal of
/// it then says so.
public final class RequestClient {
    let context: ZMQContext
    let security: SocketSecurity
    let codec: EnvelopeCodec
    /// The coordinators known: the list given, and leaders named by standbys.
    public private(set) var endpoints: [String]
    private var sockets: [String: ZMQSocket] = [:]
    /// The coordinator that answered last (the leader, as far as this client knows).
    public private(set) var preferred = 0
    /// With several coordinators: how long one may stay silent before the next is asked. Short, because a slow
    /// leader asked again is only waited for again (never sent the request twice).
    public var attemptTimeout = 1.0
    /// false: a standby's refusal is the answer (a client of one coordinator in particular).
    public var followsLeader = true
    private var counter: UInt64 = 0
    private let prefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)

    public convenience init(context: ZMQContext, endpoint: String, security: SocketSecurity, codec: EnvelopeCodec) throws(BusError) {
        try self.init(context: context, endpoints: [endpoint], security: security, codec: codec)
    }

    public init(context: ZMQContext, endpoints: [String], security: SocketSecurity, codec: EnvelopeCodec) throws(BusError) {
        guard !endpoints.isEmpty else { throw BusError("no coordinator to send requests to") }
        self.context = context
        self.security = security
        self.codec = codec
        self.endpoints = endpoints
        _ = try socket(endpoints[0])
    }

    func socket(_ endpoint: String) throws(BusError) -> ZMQSocket {
        if let socket = sockets[endpoint] { return socket }
        do {
            let socket = try ZMQSocket(context, .dealer)
            try security.apply(to: socket)
            try socket.set(.heartbeatInterval, 1000)
            try socket.set(.heartbeatTimeout, 3000)
            try socket.connect(endpoint)
            sockets[endpoint] = socket
            return socket
        } catch {
            throw BusError("cannot connect to \(endpoint): \(error)")
        }
    }

    /// Sends `request` and waits up to `timeout` seconds for its reply (from the leader, with several).
    public func call(_ request: Vnet_V1_ControlRequest, timeout: Double) throws(BusError) -> Vnet_V1_ControlReply {
        counter += 1
        var request = request
        request.requestID = "\(prefix)-\(counter)"
        let deadline = Date().addingTimeInterval(timeout)
        var target = preferred
        var silent: [String] = []
        // Sent once per coordinator: one asked again after it was silent is only waited for again, so that a
        // slow leader never gets the same request twice.
        var sent: Set<String> = []
        var lastRefusal: Vnet_V1_ControlReply?
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else {
                if let lastRefusal { return lastRefusal }
                throw BusError("no reply from the coordinator\(endpoints.count > 1 ? "s (\(endpoints.joined(separator: ", ")))" : "") within \(timeout) s (is it running, and is this key in its admin allow-list?)")
            }
            let endpoint = endpoints[target]
            let window = endpoints.count == 1 ? remaining : min(remaining, attemptTimeout)
            let first = sent.insert(endpoint).inserted
            guard var reply = try exchange(request, with: endpoint, send: first, within: window) else {
                if !silent.contains(endpoint) { silent.append(endpoint) }
                target = (target + 1) % endpoints.count
                continue
            }
            if followsLeader, reply.errorKind == ClusterError.Kind.notLeader.rawValue {
                lastRefusal = reply
                sent.remove(endpoint)  // refused, not carried out: it may be asked again once it leads
                if !reply.leader.isEmpty, reply.leader != endpoint {
                    if !endpoints.contains(reply.leader) { endpoints.append(reply.leader) }
                    target = endpoints.firstIndex(of: reply.leader)!
                } else {
                    // A failover under way: the next one may already lead; a breath before asking round again.
                    Thread.sleep(forTimeInterval: min(0.2, max(0, deadline.timeIntervalSinceNow)))
                    target = (target + 1) % endpoints.count
                }
                continue
            }
            preferred = target
            if silent.contains(where: { $0 != endpoint }), !reply.ok {
                reply.error += " (sent to \(endpoint) after \(silent.joined(separator: ", ")) did not answer; it may have been carried out there)"
            }
            return reply
        }
    }

    /// One attempt with one coordinator: its reply, or nil when it stays silent for `window` seconds.
    func exchange(_ request: Vnet_V1_ControlRequest, with endpoint: String, send: Bool, within window: Double) throws(BusError) -> Vnet_V1_ControlReply? {
        let socket = try socket(endpoint)
        if send {
            do {
                try socket.send([[], codec.encode(.controlRequest(request))], wait: false)
            } catch {
                return nil  // its queue is full: a coordinator long gone
            }
        }
        let deadline = Date().addingTimeInterval(window)
        while true {
            let remaining = Int(deadline.timeIntervalSinceNow * 1000)
            guard remaining > 0 else { return nil }
            let ready: [Bool]
            do { ready = try ZMQPoller.readable([socket], timeoutMilliseconds: remaining) } catch { throw BusError("\(error)") }
            guard ready[0] else { continue }
            let message: ZMQMessage?
            do { message = try socket.receive(wait: false) } catch { throw BusError("\(error)") }
            guard let message, let frame = message.frames.last else { continue }
            guard case .success(.controlReply(let reply)) = codec.decode(frame), reply.requestID == request.requestID else { continue }
            return reply
        }
    }
}
