/// One host's side of `verify-vlan --mtu`: for each peer and VID, the largest frame that reaches the peer, found
/// with padded probes (`VLANProbe.size`) that the peer acknowledges with small replies. Raw frames have no
/// fragmentation to fall back on, so a frame either arrives whole or not at all: the semantics of IP's DF bit.
///
/// A target (peer, VID) starts once the peer has answered an ordinary probe on that VID (the path exists, and its
/// round trip says how long to wait). Its first step tries the sizes that answer most searches at once: the
/// largest this host can send (its interface MTU: when that passes, nothing larger can be asked) and the usual
/// MTUs below it (1500, the expected one). Each later step tries `fanout` sizes spread between the largest size
/// that passed and the smallest that did not, so the gap shrinks by fanout + 1 per step, down to one byte
/// (1500 to 9000 in five steps).
/// A size is given up after `tries` unanswered sends, and the size that closes the gap is asked once more before
/// the search ends, each allowed `timeout` (a lost frame is not a small MTU).
/// The timeout is TCP's retransmission timeout (RFC 6298: smoothed round trip plus four deviations, here between
/// 20 ms and 0.5 s) over every round trip this host measured (each answer echoes its probe's send time), not one
/// sample: the first round trips, measured while the whole fleet starts probing at once, are often ten times
/// what follows, and every failing step waits `tries` timeouts. An answer that comes after all reopens the search.
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

    public struct Probe: Sendable, Hashable {
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
        /// When the step's current try was sent.
        var sentAt: Double = 0
        var done = false
        /// Sizes that failed a second time, asked again once the gap closed on them: one lost burst (many
        /// hosts searching at once fill a receive buffer) must not pass for a small MTU.
        var confirmed: Set<Int> = []
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

    public init(ceiling: Int, floor: Int, preferred: [Int] = [1500], fanout: Int = 6, tries: Int = 3) {
        self.ceiling = max(ceiling, floor)
        self.floor = floor
        self.preferred = preferred
        self.fanout = max(1, fanout)
        self.tries = max(1, tries)
    }

    /// Every started search has its answer (true when none started).
    public var finished: Bool { states.values.allSatisfy(\.done) }
    public var started: Set<Target> { Set(states.keys) }
    /// Whether a probe of `size` to `target` is still waited for (a queued one that is not is stale).
    public func isPending(_ probe: Probe) -> Bool { states[probe.target]?.pending[probe.size] != nil }
    public func outcome(_ target: Target) -> Outcome? {
        states[target].flatMap { $0.done ? Outcome(passed: $0.passed, failed: $0.failed) : nil }
    }

    private var smoothed: Double?
    private var deviation = 0.0

    /// A round trip measured (an ordinary probe's, or an acknowledgement's): RFC 6298's estimators.
    public mutating func sample(roundTrip: Double) {
        guard roundTrip >= 0, roundTrip.isFinite else { return }
        if let smoothed {
            deviation = 0.75 * deviation + 0.25 * abs(smoothed - roundTrip)
            self.smoothed = 0.875 * smoothed + 0.125 * roundTrip
        } else {
            smoothed = roundTrip
            deviation = roundTrip / 2
        }
    }

    /// How long a probe is waited for: the smoothed round trip and four deviations, at least 20 ms (a host's
    /// scheduler) and at most half a second; 50 ms before any round trip was measured.
    public var timeout: Double { min(0.5, max(0.02, smoothed.map { $0 + 4 * deviation } ?? 0.05)) }

    /// Starts the search of `target` (once; again is nothing): its first step's probes.
    public mutating func start(_ target: Target, now: Double) -> [Probe] {
        guard states[target] == nil else { return [] }
        var state = State(passed: floor)
        guard ceiling > floor else {
            state.done = true
            states[target] = state
            return []
        }
        let sizes = Set([ceiling] + preferred.filter { $0 > floor && $0 < ceiling })
        return begin(target, &state, sizes: sizes, now: now)
    }

    /// The peer acknowledged a probe of `size`: the step ends once every size of it is answered or given up.
    public mutating func acknowledged(_ target: Target, size: Int, now: Double, roundTrip: Double? = nil) -> [Probe] {
        guard var state = states[target] else { return [] }
        if let roundTrip {
            // The sizes still waiting need not wait longer than the estimate now allows.
            sample(roundTrip: roundTrip)
            state.deadline = min(state.deadline, state.sentAt + timeout)
        }
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

    /// A probe left the host (it may have waited its turn behind others, paced): its wait starts now.
    public mutating func sent(_ probe: Probe, at now: Double) {
        guard var state = states[probe.target], state.pending[probe.size] != nil else { return }
        state.sentAt = max(state.sentAt, now)
        state.deadline = max(state.deadline, now + timeout)
        states[probe.target] = state
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
            state.deadline = now + timeout
            state.sentAt = now
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
        guard let failed = state.failed else {
            state.done = true
            states[target] = state
            return []
        }
        guard failed > state.passed + 1 else {
            if state.confirmed.insert(failed).inserted { return begin(target, &state, sizes: [failed], now: now) }
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
        state.deadline = now + timeout
        state.sentAt = now
        states[target] = state
        return sizes.sorted(by: >).map { Probe(target: target, size: $0) }
    }
}
