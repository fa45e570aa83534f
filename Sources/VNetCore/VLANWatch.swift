/// The coordinator's continuous watch of the VLANs in use (`vnet-coordinator --watch-vlans`), as a value: every
/// path between a node and the front end, on each VID the node carries (a group it runs instances of) and
/// untagged, checked over and over in small rounds within a cluster-wide budget of frames per second, each
/// path's state changing only after `hysteresis` consecutive results the other way (a lost frame is not an
/// outage, a flapping port is not reported at every flap).
///
/// Paths run from each node to the front end only (a star, not a matrix): the front end carries every VLAN,
/// so it is the reference, and a path per node and VID keeps the metrics' cardinality to the paths in use
/// (100 nodes of 10 VLANs each: 1100 series, where a matrix would be 100 times that). A round checks one VID
/// (with the untagged control, which the probe always runs) between the front end and the nodes carrying it, at
/// most as many as the budget allows a round; rounds take the VIDs in turn. Pure: the driver starts each round
/// as a probe run and feeds back what each pair did.
public struct VLANWatch: Sendable {
    public struct Path: Hashable, Sendable, Comparable {
        public var node: String
        /// 0: untagged.
        public var vlan: Int
        public init(node: String, vlan: Int) { self.node = node; self.vlan = vlan }
        public static func < (a: Path, b: Path) -> Bool { (a.vlan, a.node) < (b.vlan, b.node) }
    }

    public enum State: String, Sendable { case up, down }

    /// A round to run: the VID (0: only the untagged control) and the nodes, probed against the front end.
    public struct Round: Equatable, Sendable {
        public var vlan: Int
        public var nodes: [String]
        public init(vlan: Int, nodes: [String]) { self.vlan = vlan; self.nodes = nodes }
    }

    /// Frames a path costs a round: a probe and its answer each way, `count` times.
    public static func frames(count: Int) -> Int { 4 * count }

    public let framesPerSecond: Double
    public let hysteresis: Int
    /// Probes per peer and VID in a round.
    public let count: Int
    /// At most this many nodes a round (the budget over a second, at least one).
    public var nodesPerRound: Int { max(1, Int(framesPerSecond) / (2 * Self.frames(count: count))) }

    /// What each node carries: the VIDs (the untagged path is always watched).
    public private(set) var carried: [String: Set<Int>] = [:]
    public private(set) var states: [Path: State] = [:]
    private var streak: [Path: (up: Bool, count: Int)] = [:]
    /// The VIDs in turn, and where the turn is; within a VID, where the next chunk of its nodes starts.
    private var turn = 0
    private var offset = 0

    public init(framesPerSecond: Double = 500, hysteresis: Int = 3, count: Int = 2) {
        self.framesPerSecond = max(1, framesPerSecond)
        self.hysteresis = max(1, hysteresis)
        self.count = max(1, count)
    }

    /// Every path watched now.
    public var paths: [Path] {
        carried.flatMap { node, vids in ([0] + vids.sorted()).map { Path(node: node, vlan: $0) } }.sorted()
    }

    /// The nodes and what they carry now; paths no longer carried are forgotten (their metric goes).
    public mutating func track(_ carriage: [String: Set<Int>]) {
        carried = carriage.mapValues { $0.filter { $0 != 0 } }
        let live = Set(paths)
        states = states.filter { live.contains($0.key) }
        streak = streak.filter { live.contains($0.key) }
    }

    /// The next round: the next VID in turn and the next chunk of its nodes; untagged (0) is a turn of its own
    /// for the nodes that carry no VID (the others' untagged paths are checked in their VIDs' rounds, as the
    /// probe's control). Nil when nothing is watched.
    public mutating func nextRound() -> Round? {
        guard !carried.isEmpty else { return nil }
        let bare = carried.filter { $0.value.isEmpty }.keys.sorted()
        let vids = (bare.isEmpty ? [] : [0]) + Array(Set(carried.values.flatMap { $0 })).sorted()
        let vlan = vids[turn % vids.count]
        let nodes = vlan == 0 ? bare : carried.filter { $0.value.contains(vlan) }.keys.sorted()
        let chunk = Array(nodes.dropFirst(offset).prefix(nodesPerRound))
        offset += chunk.count
        if offset >= nodes.count {
            offset = 0
            turn = (turn + 1) % vids.count
        }
        return chunk.isEmpty ? nil : Round(vlan: vlan, nodes: chunk)
    }

    /// How long after a round starts the next may: its frames at the budget's rate.
    public func spacing(_ round: Round) -> Double {
        Double(round.nodes.count * (round.vlan == 0 ? 1 : 2) * Self.frames(count: count)) / framesPerSecond
    }

    /// A round's results (nil: the pair was not judged, a host not taking part): the paths whose state changed.
    public mutating func record(_ results: [Path: Bool?]) -> [(path: Path, state: State)] {
        var changed: [(Path, State)] = []
        for (path, result) in results.sorted(by: { $0.key < $1.key }) {
            guard let up = result, carried[path.node] != nil, path.vlan == 0 || carried[path.node]?.contains(path.vlan) == true else { continue }
            let previous = streak[path]
            let count = previous?.up == up ? previous!.count + 1 : 1
            streak[path] = (up, count)
            let state: State = up ? .up : .down
            if count >= hysteresis, states[path] != state {
                states[path] = state
                changed.append((path, state))
            }
        }
        return changed
    }
}
