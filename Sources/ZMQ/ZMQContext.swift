import CZMQ

/// A libzmq context. libzmq documents contexts as thread-safe, hence `@unchecked Sendable`; sockets made from
/// it are not, and stay on the thread that uses them.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    /// `maxSockets`: libzmq allows 1023 sockets per context by default; a benchmark simulating a thousand
    /// agents needs more.
    public init(maxSockets: Int32? = nil) {
        handle = zmq_ctx_new()
        if let maxSockets { zmq_ctx_set(handle, ZMQ_MAX_SOCKETS, maxSockets) }
    }

    /// Terminates the context. Every socket must be closed first (they are, with linger set, so this never
    /// waits on unsent messages).
    deinit {
        while zmq_ctx_term(handle) != 0, zmq_errno() == EINTR {}
    }

    /// Whether this libzmq was built with CURVE (libsodium).
    public static var hasCurve: Bool { zmq_has("curve") == 1 }
}
