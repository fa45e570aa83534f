/// The agent's half of the Clone pattern, as a pure decision: given the revision it holds and an update, what
/// to do. An update continues the agent's history only if its `previousRevision` is the revision the agent
/// holds; anything else newer means an update was missed, and a snapshot puts it right.
public enum SyncDecision: Equatable, Sendable {
    case apply
    case ignore
    case requestSnapshot
    /// The coordinator names an older revision than the one held: never gone back to.
    case stale

    public static func forUpdate(revision: UInt64, previousRevision: UInt64, held: UInt64) -> SyncDecision {
        if revision <= held { return .ignore }          // a duplicate or an old update
        if previousRevision == held { return .apply }   // the next one in this host's history
        return .requestSnapshot                          // a gap: something was missed
    }

    /// After a heartbeat reply: the coordinator's desired revision for this host against the one held.
    public static func forHeartbeat(desired: UInt64, held: UInt64) -> SyncDecision {
        desired == held ? .ignore : desired > held ? .requestSnapshot : .stale
    }

    /// Of the updates read in one go (nil: not an update for this host), the one to apply and the first gap,
    /// judged as if they were taken one by one from `held`. Every update carries the host's whole state, so
    /// applying only the last that would have been applied leaves the host exactly as applying each would:
    /// a burst of changes costs one apply, not one per change.
    public static func coalesce(_ updates: [(revision: UInt64, previous: UInt64)?], held: UInt64) -> (apply: Int?, gap: (revision: UInt64, previous: UInt64)?) {
        var current = held
        var apply: Int?
        var gap: (revision: UInt64, previous: UInt64)?
        for (index, update) in updates.enumerated() {
            guard let update else { continue }
            switch forUpdate(revision: update.revision, previousRevision: update.previous, held: current) {
            case .ignore, .stale: continue
            case .apply:
                apply = index
                current = update.revision
            case .requestSnapshot:
                if gap == nil { gap = update }
            }
        }
        return (apply, gap)
    }
}
