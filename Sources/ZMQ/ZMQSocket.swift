import CZMQ

/// One libzmq socket. Not Sendable: libzmq sockets may be used by one thread at a time, and the compiler
/// keeps it so. Every socket gets linger 0 so that closing never blocks on peers that went away.
public final class ZMQSocket {
    public enum Kind: Int32, Sendable {
        case pub = 1, sub = 2, req = 3, rep = 4, dealer = 5, router = 6
    }

    let handle: UnsafeMutableRawPointer
    public let kind: Kind
    private let context: ZMQContext  // kept alive while the socket is
    private var closed = false

    public init(_ context: ZMQContext, _ kind: Kind) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, kind.rawValue) else { throw ZMQError("zmq_socket") }
        self.handle = handle
        self.kind = kind
        self.context = context
        try set(ZMQ_LINGER, 0)
    }

    deinit { close() }

    public func close() {
        if !closed {
            zmq_close(handle)
            closed = true
        }
    }

    // MARK: options

    /// The socket options this project sets, named: callers need not import libzmq's C header (only this
    /// wrapper does).
    public enum Option: Sendable {
        case sendHighWaterMark, receiveHighWaterMark, heartbeatInterval, heartbeatTimeout, reconnectInterval,
             reconnectIntervalMax, maxMessageSize, routerMandatory, curveServer, curvePublicKey, curveSecretKey,
             curveServerKey, zapDomain

        var code: Int32 {
            switch self {
            case .sendHighWaterMark: ZMQ_SNDHWM
            case .receiveHighWaterMark: ZMQ_RCVHWM
            case .heartbeatInterval: ZMQ_HEARTBEAT_IVL
            case .heartbeatTimeout: ZMQ_HEARTBEAT_TIMEOUT
            case .reconnectInterval: ZMQ_RECONNECT_IVL
            case .reconnectIntervalMax: ZMQ_RECONNECT_IVL_MAX
            case .maxMessageSize: ZMQ_MAXMSGSIZE
            case .routerMandatory: ZMQ_ROUTER_MANDATORY
            case .curveServer: ZMQ_CURVE_SERVER
            case .curvePublicKey: ZMQ_CURVE_PUBLICKEY
            case .curveSecretKey: ZMQ_CURVE_SECRETKEY
            case .curveServerKey: ZMQ_CURVE_SERVERKEY
            case .zapDomain: ZMQ_ZAP_DOMAIN
            }
        }
    }

    public func set(_ option: Option, _ value: Int32) throws(ZMQError) { try set(option.code, value) }
    /// For the few options libzmq takes as int64_t (maxMessageSize).
    public func set(_ option: Option, int64 value: Int64) throws(ZMQError) { try set(option.code, int64: value) }
    public func set(_ option: Option, _ bytes: [UInt8]) throws(ZMQError) { try set(option.code, bytes) }
    public func set(_ option: Option, _ text: String) throws(ZMQError) { try set(option.code, Array(text.utf8)) }

    func set(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var value = value
        if zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) != 0 { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    func set(_ option: Int32, int64 value: Int64) throws(ZMQError) {
        var value = value
        if zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) != 0 { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    func set(_ option: Int32, _ bytes: [UInt8]) throws(ZMQError) {
        let result = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if result != 0 { throw ZMQError("zmq_setsockopt(\(option))") }
    }


    public func getString(_ option: Int32) throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        if zmq_getsockopt(handle, option, &buffer, &size) != 0 { throw ZMQError("zmq_getsockopt(\(option))") }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func getInt(_ option: Int32) throws(ZMQError) -> Int32 {
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        if zmq_getsockopt(handle, option, &value, &size) != 0 { throw ZMQError("zmq_getsockopt(\(option))") }
        return value
    }

    // MARK: endpoints

    public func bind(_ endpoint: String) throws(ZMQError) {
        if zmq_bind(handle, endpoint) != 0 { throw ZMQError("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        if zmq_connect(handle, endpoint) != 0 { throw ZMQError("connect \(endpoint)") }
    }

    /// The endpoint actually bound (after binding to port `*`).
    public var lastEndpoint: String { (try? getString(ZMQ_LAST_ENDPOINT)) ?? "" }

    /// The descriptor libzmq signals this socket's activity on (ZMQ_FD), for waiting on many sockets with
    /// epoll instead of zmq_poll's scan of all of them. It says "look", not "readable": after it fires, and
    /// after any send, the socket must be drained with non-blocking receives until none is left, or a message
    /// already queued is never signalled again.
    public var fileDescriptor: Int32 { (try? getInt(ZMQ_FD)) ?? -1 }

    public func subscribe(_ prefix: [UInt8]) throws(ZMQError) { try set(ZMQ_SUBSCRIBE, prefix) }

    // MARK: messages

    /// Sends the frames as one multipart message. With `wait: false` a full queue throws EAGAIN.
    public func send(_ frames: [[UInt8]], wait: Bool = true) throws(ZMQError) {
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = wait ? 0 : ZMQ_DONTWAIT
            if index < frames.count - 1 { flags |= ZMQ_SNDMORE }
            let result = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            if result < 0 { throw ZMQError("zmq_send") }
        }
    }

    /// Receives one multipart message, or nil when nothing is waiting and `wait` is false. (Oversized
    /// messages are refused by libzmq itself: set ZMQ_MAXMSGSIZE on sockets that face untrusted peers.)
    public func receive(wait: Bool = true) throws(ZMQError) -> ZMQMessage? {
        // zmq_msg_t keeps small messages inline, so it lives at a stable heap address, not in a Swift local.
        let message = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { message.deallocate() }
        var frames: [[UInt8]] = []
        var userID: String?
        var peerAddress: String?
        var more = true
        while more {
            zmq_msg_init(message)
            if zmq_msg_recv(message, handle, wait || !frames.isEmpty ? 0 : ZMQ_DONTWAIT) < 0 {
                let error = ZMQError("zmq_msg_recv")
                zmq_msg_close(message)
                if error.isAgain, frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(message)
            if let data = zmq_msg_data(message), size > 0 {
                frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            } else {
                frames.append([])
            }
            // Metadata is read before the message is closed; libzmq attaches it to every frame.
            if userID == nil, let value = zmq_msg_gets(message, "User-Id") { userID = String(cString: value) }
            if peerAddress == nil, let value = zmq_msg_gets(message, "Peer-Address") { peerAddress = String(cString: value) }
            more = zmq_msg_more(message) == 1
            zmq_msg_close(message)
        }
        return ZMQMessage(frames: frames, userID: userID, peerAddress: peerAddress)
    }
}

/// A received multipart message with the metadata libzmq attached: the ZAP handler's User-Id (who the
/// authenticated peer is) and the peer's address.
public struct ZMQMessage: Sendable {
    public var frames: [[UInt8]]
    public var userID: String?
    public var peerAddress: String?
}
