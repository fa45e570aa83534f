import CZMQ

/// A libzmq call that failed: what was attempted, and errno as libzmq describes it.
public struct ZMQError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32

    public init(_ operation: String, code: Int32 = zmq_errno()) {
        self.operation = operation
        self.code = code
    }

    public var isAgain: Bool { code == EAGAIN }
    public var isInterrupted: Bool { code == EINTR }
    public var description: String { "\(operation): \(String(cString: zmq_strerror(code)))" }
}
