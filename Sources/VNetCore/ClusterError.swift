/// A request the cluster cannot carry out, with the field it is about when it came from a file or a message
/// (`instances[3].group`) and a message that says why and, where it can, what to do.
public struct ClusterError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String?
    public var message: String

    public init(field: String? = nil, _ message: String) {
        self.field = field
        self.message = message
    }

    public func at(_ field: String) -> ClusterError {
        ClusterError(field: self.field.map { "\(field).\($0)" } ?? field, message)
    }

    public var description: String { field.map { "\($0): \(message)" } ?? message }
}
