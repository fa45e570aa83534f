import Foundation
import VNetProto
import ZMQ

/// One request, one reply, over a DEALER socket, with a deadline: what vnetctl uses for control requests.
/// A DEALER (not REQ) so that a lost reply never wedges the socket; replies are matched by request id.
public final class RequestClient {
    let socket: ZMQSocket
    let codec: EnvelopeCodec
    private var counter: UInt64 = 0
    private let prefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)

    public init(context: ZMQContext, endpoint: String, security: SocketSecurity, codec: EnvelopeCodec) throws(BusError) {
        self.codec = codec
        do {
            socket = try ZMQSocket(context, .dealer)
            try security.apply(to: socket)
            try socket.set(.heartbeatInterval, 1000)
            try socket.set(.heartbeatTimeout, 3000)
            try socket.connect(endpoint)
        } catch {
            throw BusError("cannot connect to \(endpoint): \(error)")
        }
    }

    /// Sends `request` and waits up to `timeout` seconds for its reply.
    public func call(_ request: Vnet_V1_ControlRequest, timeout: Double) throws(BusError) -> Vnet_V1_ControlReply {
        counter += 1
        var request = request
        request.requestID = "\(prefix)-\(counter)"
        do {
            try socket.send([[], codec.encode(.controlRequest(request))])
        } catch {
            throw BusError("cannot send: \(error)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let remaining = Int(deadline.timeIntervalSinceNow * 1000)
            guard remaining > 0 else {
                throw BusError("no reply from the coordinator within \(timeout) s (is it running, and is this key in its admin allow-list?)")
            }
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
