import CZMQ

/// Waits until one of several sockets has a message (zmq_poll). One event loop per thread owns its sockets
/// and polls them together.
public enum ZMQPoller {
    /// Which of `sockets` are readable, waiting at most `timeoutMilliseconds` (-1: forever).
    public static func readable(_ sockets: [ZMQSocket], timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let count = zmq_poll(&items, Int32(items.count), timeoutMilliseconds)
        if count < 0 {
            let error = ZMQError("zmq_poll")
            if error.isInterrupted { return Array(repeating: false, count: sockets.count) }
            throw error
        }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
