import VNetCore

/// The coordinator's bring-up checks (`BringUpCheck`), as a value: VLANs that came up wait here and go together
/// in one probe run (the front end and every node with a new VLAN), one run at a time, and never while an
/// operator's verification runs (an agent probes one verification at a time, and the front end takes part in
/// each). The latest result per node and VID is kept for `nodes`, which `--wait` reads; a VLAN that went down
/// on its node takes its result with it.
struct BringUpQueue {
    /// How long a check probes at most (a clean one ends in a fraction of it): short, it holds operators'
    /// verifications while it runs.
    static let window = 1.5

    /// Node -> VID -> the revision that brought it up.
    private(set) var waiting: [String: [Int: UInt64]] = [:]
    /// The run under way: its id and what it checks.
    private(set) var running: (id: String, checks: [String: [Int: UInt64]])?
    private(set) var results: [String: [Int: BringUpCheck.Result]] = [:]

    /// A commit brought `up` (node -> VIDs) at `revision`; `current`: the VIDs after it of each node it changed
    /// (the others keep theirs).
    mutating func committed(up: [String: Set<Int>], current: [String: Set<Int>], revision: UInt64) {
        for (node, vids) in up {
            for vid in vids {
                waiting[node, default: [:]][vid] = revision
                results[node, default: [:]][vid] = BringUpCheck.Result(node: node, vlan: vid, revision: revision, state: .pending)
            }
        }
        for (node, vids) in current {
            results[node] = results[node]?.filter { vids.contains($0.key) }
            if results[node]?.isEmpty == true { results[node] = nil }
            waiting[node] = waiting[node]?.filter { vids.contains($0.key) }
            if waiting[node]?.isEmpty == true { waiting[node] = nil }
        }
    }

    /// The next run to start, if none runs and something waits: the nodes and VIDs it checks. `busy`: an
    /// operator's verification runs.
    mutating func next(id: String, busy: Bool) -> (nodes: [String], vlans: [Int])? {
        guard running == nil, !busy, !waiting.isEmpty else { return nil }
        running = (id, waiting)
        waiting = [:]
        return (running!.checks.keys.sorted(), Array(Set(running!.checks.values.flatMap(\.keys))).sorted())
    }

    /// A node that cannot take part (not UP): its checks are skipped, saying why.
    mutating func skip(_ node: String, reason: String) {
        guard let checks = running?.checks[node] else { return }
        for (vid, revision) in checks where results[node]?[vid]?.revision == revision {
            results[node]?[vid] = BringUpCheck.Result(node: node, vlan: vid, revision: revision, state: .skipped, detail: reason)
        }
        running?.checks[node] = nil
    }

    /// The run `id` ended with these pairs (the front end `frontend`); each node's VIDs are judged on its pair
    /// with the front end. A result newer than the run (the VLAN went down and up again meanwhile) is kept.
    mutating func finished(id: String, pairs: [VLANVerification.Pair], frontend: String, ports: [String: LLDPNeighbor]) {
        guard let run = running, run.id == id else { return }
        running = nil
        func pair(_ node: String, _ vlan: Int) -> VLANVerification.Pair? {
            pairs.first { $0.vlan == vlan && Set([$0.a, $0.b]) == Set([node, frontend]) }
        }
        for (node, checks) in run.checks {
            for (vid, revision) in checks where results[node]?[vid]?.revision == revision {
                let status = pair(node, vid)?.status ?? .unreachable(node)
                let (state, detail) = BringUpCheck.judge(node: node, frontend: frontend, vlan: vid, status: status, control: pair(node, 0)?.status,
                                                         port: ports[node])
                results[node]?[vid] = BringUpCheck.Result(node: node, vlan: vid, revision: revision, state: state, detail: detail)
            }
        }
    }
}
