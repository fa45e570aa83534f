/// A request the cluster cannot carry out, with the field it is about when it came from a file or a message
/// (`instances[3].group`) and a message that says why and, where it can, what to do.
public struct ClusterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of refusal it is, for clients that answer in another vocabulary (the EC2 gateway's error
    /// codes): the message is for people, the kind for programs. Most refusals are `.invalid`.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case invalid
        /// The cluster's mode has no security groups or public addresses (SYSTEM, STATIC).
        case unsupportedMode
        case groupNotFound
        case groupExists
        case ruleExists
        case ruleNotFound
        /// A group still has instances, or another group's rule names it.
        case groupInUse
        case addressNotFound
        /// No free public address, or the requested one is taken.
        case addressLimit
        /// The address is associated (release), or associated elsewhere (associate).
        case addressInUse
        case instanceNotFound
        /// No free network, MAC map pair or slot.
        case capacity
        /// This coordinator is a standby (several share a PostgreSQL store): ask the leader.
        case notLeader
    }

    public var field: String?
    public var message: String
    public var kind: Kind

    public init(field: String? = nil, _ message: String, kind: Kind = .invalid) {
        self.field = field
        self.message = message
        self.kind = kind
    }

    public func at(_ field: String) -> ClusterError {
        ClusterError(field: self.field.map { "\(field).\($0)" } ?? field, message, kind: kind)
    }

    public var description: String { field.map { "\($0): \(message)" } ?? message }
}
