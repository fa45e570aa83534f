import Foundation
import VNetBus
import VNetEC2
import VNetProto
import ZMQ

/// The gateway's way to the coordinator: DEALER clients, one per request in flight (a ZeroMQ socket is
/// used by one thread at a time), made when first needed and reused. Calls block; they run on the
/// gateway's worker threads, never on an event loop.
final class BusPool: @unchecked Sendable {
    let connection: ControlConnection
    let clusterID: String
    let timeout: Double
    let context = ZMQContext()
    private let lock = NSLock()
    private var idle: [RequestClient] = []

    init(connection: ControlConnection, clusterID: String, timeout: Double) {
        self.connection = connection
        self.clusterID = clusterID
        self.timeout = timeout
    }

    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws(EC2Error) -> Vnet_V1_ControlReply {
        let client: RequestClient
        do {
            client = try lock.withLock { idle.popLast() } ?? connection.client(context: context, clusterID: clusterID)
        } catch {
            throw EC2Error.unavailable("The service cannot reach the vnet coordinator: \(error)")
        }
        var request = Vnet_V1_ControlRequest()
        request.op = op
        do {
            let reply = try client.call(request, timeout: timeout)
            lock.withLock { idle.append(client) }
            return reply
        } catch {
            // A client that timed out may yet receive the late reply: it is dropped, not reused.
            throw EC2Error.unavailable("The vnet coordinator did not answer within \(timeout) s; nothing is known to have changed, but a change may have been made: describe before retrying")
        }
    }
}

/// `ControlChannel` over the pool, for one request.
struct PooledChannel: ControlChannel {
    let pool: BusPool
    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws(EC2Error) -> Vnet_V1_ControlReply { try pool.call(op) }
}
