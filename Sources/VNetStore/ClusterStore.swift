import VNetCore

/// The coordinator's durable memory: every allocation, the cluster revision, and the revision at which each
/// node's desired state last changed. A change is committed before the request that made it is answered.
public protocol ClusterStore: AnyObject {
    func load() throws -> StoredCluster
    /// Writes the change in one transaction; on error nothing of it is written.
    func commit(_ change: StoreChange) throws
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
