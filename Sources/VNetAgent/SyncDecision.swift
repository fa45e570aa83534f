/// The agent's half of the Clone pattern, as a pure decision: given the revision it holds and an update, what
/// to do. An update continues the agent's history only if its `previousRevision` is the revision the agent
/// holds; anything else newer means an update was missed, and a snapshot puts it right.
public enum SyncDecision: Equatable, Sendable {
    case apply
    case ignore
    case requestSnapshot

    public static func forUpdate(revision: UInt64, previousRevision: UInt64, held: UInt64) -> SyncDecision {
        if revision <= held { return .ignore }          // a duplicate or an old update
        if previousRevision == held { return .apply }   // the next one in this host's history
        return .requestSnapshot                          // a gap: something was missed
    }

    /// After a heartbeat reply: the coordinator's desired revision for this host against the one held.
    public static func forHeartbeat(desired: UInt64, held: UInt64) -> SyncDecision {
        desired == held ? .ignore : .requestSnapshot
    }
}
