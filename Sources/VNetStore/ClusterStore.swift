import VNetCore

/// The coordinator's durable memory: every allocation, the cluster revision, and the revision at which each
/// node's desired state last changed. A change is committed before the request that made it is answered.
public protocol ClusterStore: AnyObject {
    /// Where the store is, for messages: a file, or a PostgreSQL server and database (never a password).
    var location: String { get }
    func load() throws -> StoredCluster
    /// Writes the change in one transaction, and only while `epoch` is the store's current leader epoch (a
    /// coordinator that lost its lease can never write again); on error nothing of it is written.
    func commit(_ change: StoreChange, epoch: UInt64) throws
}

/// Leadership among coordinators sharing one store: a lease with an epoch and an expiry, kept by the store's
/// own clock (so coordinators' clocks never have to agree). Taking the lease makes a new epoch, higher than
/// any before; renewing keeps it; every commit is checked against it.
public protocol LeaseStore: AnyObject {
    /// Takes the lease if it lapsed, was released, or is this holder's own (then under a new epoch: what
    /// a coordinator that doubted its state does to reload it). Returns the lease as it is afterwards.
    func acquire(holder: String, control: String, seconds: Double) throws -> Lease
    /// Extends the lease by `seconds` from now if `epoch` still holds it.
    func renew(epoch: UInt64, seconds: Double) throws -> Bool
    /// Lets the lease lapse now (a clean stop: a standby takes over at once).
    func release(epoch: UInt64) throws
    func current() throws -> Lease
}

/// The lease as the store has it.
public struct Lease: Sendable, Equatable {
    public var epoch: UInt64
    /// Who holds it (a coordinator's run id, unique per process) and where its control endpoint is.
    public var holder: String
    public var control: String
    /// Seconds until it lapses by the store's clock; not above 0: lapsed.
    public var remaining: Double

    public init(epoch: UInt64, holder: String, control: String, remaining: Double) {
        self.epoch = epoch; self.holder = holder; self.control = control; self.remaining = remaining
    }

    public var isHeld: Bool { remaining > 0 && !holder.isEmpty }
}

/// Why the store did not do what was asked, so that the coordinator knows what may have been written.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The store refused the change (a constraint); nothing of it was written.
        case rejected
        /// The epoch is no longer the leader's: nothing was written, and this coordinator must step down.
        case fenced
        /// The store could not be reached, or did not answer in time: whether the change was written is not
        /// known until the state is loaded again.
        case unavailable
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    public var description: String { message }
}

/// The revision at which a host's desired state last changed, the one before it, and a digest of the state
/// (so that a coordinator restarted with a changed config notices that a state changed under the same
/// allocations, and bumps the revision rather than letting agents believe they are current).
public struct NodeRevision: Sendable, Equatable, Codable {
    public var revision: UInt64
    public var previous: UInt64
    public var digest: UInt64
    public init(revision: UInt64, previous: UInt64, digest: UInt64) {
        self.revision = revision; self.previous = previous; self.digest = digest
    }
}

public struct StoredCluster: Sendable {
    public var state: ClusterState
    public var revision: UInt64
    public var nodeRevisions: [String: NodeRevision]

    public init(state: ClusterState, revision: UInt64, nodeRevisions: [String: NodeRevision]) {
        self.state = state; self.revision = revision; self.nodeRevisions = nodeRevisions
    }
}

/// What one committed batch changes, row by row.
public struct StoreChange: Sendable {
    public var revision: UInt64
    public var nodes: [ClusterState.Node] = []
    public var groups: [ClusterState.Group] = []
    public var deletedGroups: [GroupID] = []
    public var instances: [ClusterState.Instance] = []
    public var deletedInstances: [InstanceID] = []
    /// An allocated address: what it points at and its owner ("" = the operator).
    public var publicIPs: [(IPv4Address, InstanceID?, String)] = []
    public var releasedPublicIPs: [IPv4Address] = []
    public var nodeRevisions: [String: NodeRevision] = [:]

    public init(revision: UInt64) { self.revision = revision }

    /// The rows that differ between two states.
    public static func between(_ old: ClusterState, _ new: ClusterState, revision: UInt64,
                               nodeRevisions: [String: NodeRevision]) -> StoreChange {
        var change = StoreChange(revision: revision)
        change.nodeRevisions = nodeRevisions
        for (name, node) in new.nodes where old.nodes[name] != node { change.nodes.append(node) }
        for (id, group) in new.groups where old.groups[id] != group { change.groups.append(group) }
        for id in old.groups.keys where new.groups[id] == nil { change.deletedGroups.append(id) }
        for (id, instance) in new.instances where old.instances[id] != instance { change.instances.append(instance) }
        for id in old.instances.keys where new.instances[id] == nil { change.deletedInstances.append(id) }
        for (address, holder) in new.publicIPs where old.publicIPs[address] != .some(holder) || old.publicIPOwners[address] != new.publicIPOwners[address] {
            change.publicIPs.append((address, holder, new.publicIPOwners[address] ?? ""))
        }
        for address in old.publicIPs.keys where new.publicIPs[address] == nil { change.releasedPublicIPs.append(address) }
        return change
    }

    public var isEmpty: Bool {
        nodes.isEmpty && groups.isEmpty && deletedGroups.isEmpty && instances.isEmpty && deletedInstances.isEmpty
            && publicIPs.isEmpty && releasedPublicIPs.isEmpty && nodeRevisions.isEmpty
    }
}
