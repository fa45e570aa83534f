/// One host's side of `verify-vlan --mtu`: for each peer and VID, the largest frame that reaches the peer, found
/// with padded probes (`VLANProbe.size`) that the peer acknowledges with small replies. Raw frames have no
/// fragmentation to fall back on, so a frame either arrives whole or not at all: the semantics of IP's DF bit.
///
/// A target (peer, VID) starts once the peer has answered an ordinary probe on that VID (the path exists, and its
/// round trip says how long to wait). Its first step tries the sizes that answer most searches at once: the
/// largest this host can send (its interface MTU: when that passes, nothing larger can be asked) and the usual
/// MTUs below it (1500, the expected one). Each later step tries `fanout` sizes spread between the largest size
/// that passed and the smallest that did not, so the gap shrinks by fanout + 1 per step, down to one byte.
/// A size is given up after `tries` unanswered sends, each allowed `timeout` (a lost frame is not a small MTU).
/// Value type: the session calls `start`, `acknowledged` and `tick` with the time and sends what they return.
public struct MTUSearch: Sendable {
    public struct Target: Hashable, Sendable {
        public var peer: String
        public var vlan: Int
        public init(peer: String, vlan: Int) { self.peer = peer; self.vlan = vlan }
    }

    /// What was found: the largest size that arrived, and the smallest that did not (nil: the largest this host
    /// can send arrived, so nothing larger was tried).
    public struct Outcome: Sendable, Equatable, Codable {
        public var passed: Int
        public var failed: Int?
        public init(passed: Int, failed: Int?) { self.passed = passed; self.failed = failed }
    }

    public struct Probe: Sendable, Equatable {
        public var target: Target
        public var size: Int
    }

    struct State {
        var passed: Int
        /// Every size given up, kept: an answer that comes late raises `passed` past some of them, never all
        /// (the ceiling stays refused unless it is answered too).
        var refused: Set<Int> = []
        /// The step under way: each size and how many times it was sent; answered sizes leave it.
        var pending: [Int: Int] = [:]
        var acknowledged: Set<Int> = []
        var deadline: Double = 0
        var timeout: Double
        var done = false
        /// The smallest size known not to pass, above the largest known to.
        var failed: Int? { refused.filter { $0 > passed }.min() }
    }

    /// The largest size this host can send: its interface MTU.
    public let ceiling: Int
    /// The smallest: an ordinary probe, which reached the peer before the search started.
    public let floor: Int
    /// Sizes tried in the first step besides the ceiling (when between floor and ceiling).
    public let preferred: [Int]
    public let fanout: Int
    public let tries: Int
    private var states: [Target: State] = [:]

    public init(ceiling: Int, floor: Int, preferred: [Int] = [1500], fanout: Int = 4, tries: Int = 3) {
        self.ceiling = max(ceiling, floor)
        self.floor = floor
        self.preferred = preferred
        self.fanout = max(1, fanout)
        self.tries = max(1, tries)
    }

    /// Every started search has its answer (true when none started).
    public var finished: Bool { states.values.allSatisfy(\.done) }
    public var started: Set<Target> { Set(states.keys) }
    public func outcome(_ target: Target) -> Outcome? {
        states[target].flatMap { $0.done ? Outcome(passed: $0.passed, failed: $0.failed) : nil }
    }

    /// How long to wait for an acknowledgement, from the round trip an ordinary probe took: four of them, at least
    /// 20 ms (a host's scheduler) and at most half a second.
    public static func timeout(roundTrip: Double) -> Double { min(0.5, max(0.02, 4 * roundTrip)) }

    /// Starts the search of `target` (once; again is nothing): its first step's probes.
    public mutating func start(_ target: Target, now: Double, roundTrip: Double) -> [Probe] {
        guard states[target] == nil else { return [] }
        var state = State(passed: floor, timeout: Self.timeout(roundTrip: roundTrip))
        guard ceiling > floor else {
            state.done = true
            states[target] = state
            return []
        }
        let sizes = Set([ceiling] + preferred.filter { $0 > floor && $0 < ceiling })
        return begin(target, &state, sizes: sizes, now: now)
    }

    /// The peer acknowledged a probe of `size`: the step ends once every size of it is answered or given up.
    public mutating func acknowledged(_ target: Target, size: Int, now: Double) -> [Probe] {
        guard var state = states[target] else { return [] }
        if state.pending.removeValue(forKey: size) != nil {
            state.acknowledged.insert(size)
            if state.pending.isEmpty { return conclude(target, &state, now: now) }
        } else if size > state.passed, size <= ceiling {
            // An answer after its size was given up (or from an earlier step): the size passes after all, and
            // a finished search goes on above it if the gap opened again.
            state.passed = size
            state.refused.remove(size)
            if state.done { return conclude(target, &state, now: now) }
        }
        states[target] = state
        return []
    }

    /// Sizes whose wait is over are sent again, or given up after `tries`; steps so ended are concluded.
    public mutating func tick(now: Double) -> [Probe] {
        var out: [Probe] = []
        for target in states.keys.sorted(by: { ($0.peer, $0.vlan) < ($1.peer, $1.vlan) }) {
            guard var state = states[target], !state.done, now >= state.deadline else { continue }
            for (size, sent) in state.pending {
                if sent >= tries {
                    state.pending[size] = nil
                    state.refused.insert(size)
                } else {
                    state.pending[size] = sent + 1
                    out.append(Probe(target: target, size: size))
                }
            }
            state.deadline = now + state.timeout
            if state.pending.isEmpty {
                out += conclude(target, &state, now: now)
            } else {
                states[target] = state
            }
        }
        return out
    }

    /// The step's answers narrow the gap; the next step tries sizes inside it, or the search is over.
    private mutating func conclude(_ target: Target, _ state: inout State, now: Double) -> [Probe] {
        state.passed = max(state.passed, state.acknowledged.max() ?? state.passed)
        state.acknowledged = []
        state.done = false
        guard let failed = state.failed, failed > state.passed + 1 else {
            state.done = true
            states[target] = state
            return []
        }
        let gap = failed - state.passed
        let sizes = Set((1...fanout).map { state.passed + gap * $0 / (fanout + 1) }.filter { $0 > state.passed && $0 < failed })
        return begin(target, &state, sizes: sizes.isEmpty ? [state.passed + 1] : sizes, now: now)
    }

    private mutating func begin(_ target: Target, _ state: inout State, sizes: Set<Int>, now: Double) -> [Probe] {
        state.pending = Dictionary(uniqueKeysWithValues: sizes.map { ($0, 1) })
        state.deadline = now + state.timeout
        states[target] = state
        return sizes.sorted(by: >).map { Probe(target: target, size: $0) }
    }
}
