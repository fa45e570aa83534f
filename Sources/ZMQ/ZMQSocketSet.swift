import CZMQ
import Glibc

/// Many sockets waited on together at a cost that grows with the sockets that have something, not with all
/// of them: epoll over each socket's ZMQ_FD. zmq_poll, by contrast, asks every socket on every call, which at
/// thousands of sockets is most of the work (the bus benchmark's simulated agents: 2000 sockets).
///
/// libzmq's descriptor is a signal to look, not a readable flag: a socket whose messages were not all taken,
/// or that was just sent on, may not signal again. So `ready` also returns the sockets `mark`ed since the
/// last call, and a caller drains each socket it is given until a non-blocking receive finds nothing.
public final class ZMQSocketSet {
    private let epoll: Int32
    private var marked: Set<Int> = []

    public init() throws(ZMQError) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw ZMQError("epoll_create1") }
    }

    deinit { close(epoll) }

    /// Adds `socket` under `tag` (what `ready` returns for it); it is looked at on the next `ready`.
    public func add(_ socket: ZMQSocket, tag: Int) throws(ZMQError) {
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = UInt64(tag)
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, socket.fileDescriptor, &event) == 0 else { throw ZMQError("epoll_ctl") }
        marked.insert(tag)
    }

    /// The socket under `tag` should be looked at on the next `ready` (it was sent on, or not drained).
    public func mark(_ tag: Int) { marked.insert(tag) }

    /// The tags of the sockets that may have messages, waiting up to `timeoutMilliseconds` when none is known.
    public func ready(timeoutMilliseconds: Int) -> [Int] {
        var tags = marked
        marked = []
        var events = [epoll_event](repeating: epoll_event(), count: 512)
        let count = epoll_wait(epoll, &events, Int32(events.count), tags.isEmpty ? Int32(timeoutMilliseconds) : 0)
        for event in events.prefix(max(0, Int(count))) { tags.insert(Int(event.data.u64)) }
        return tags.sorted()
    }
}
