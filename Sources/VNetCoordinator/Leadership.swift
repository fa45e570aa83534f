import VNetStore

/// Whether this coordinator leads, as a value: events in (a tick, what the store answered), actions out (ask
/// the store, become active, step down). It reads no clock and holds no connection; `LeaseKeeper` drives it
/// on a thread of its own and tests drive it with made-up times (LeadershipTests).
///
/// The lease lives in the store, timed by the store's clock. This side only ever believes it leads for less
/// than the store does: a renewal sent at local time t, answered, makes it believe until t + lease - margin,
/// while the store holds it until (its clock at the renewal) + lease, which is later. So a coordinator steps
/// down before any standby can take over, however slow its renewals or its link are; and a coordinator that
/// was paused past that point is fenced by the store on its next commit (`vnet_fence`).
///
/// Timings (defaults, `--lease`): a lease of L = 3 s, renewed every L/3 = 1 s, and tried for every
/// `retryInterval` = 0.5 s by a standby. A leader killed just after a renewal leaves the lease held for L, and
/// a standby sees it lapsed within `retryInterval` after: the worst case from the kill to a new leader is
/// L + retryInterval + one store round trip (3.5 s), and agents follow at its first heartbeat, sent at once.
public struct Leadership: Sendable {
    public struct Settings: Sendable {
        public var lease: Double = 3
        public var retryInterval: Double = 0.5
        /// Of the lease, believed less than the store holds it (clock rates may differ slightly).
        public var margin: Double = 0.2
        public var renewInterval: Double { lease / 3 }
        public init(lease: Double = 3) {
            self.lease = lease
            retryInterval = min(0.5, lease / 6)
            margin = lease * 0.1
        }
    }

    public enum Role: String, Sendable { case standby, active }

    public enum Event: Sendable {
        case tick(at: Double)
        /// What an acquire sent at `sentAt` found: the lease as the store has it afterwards.
        case acquired(Lease, sentAt: Double, at: Double)
        case renewed(Bool, sentAt: Double, at: Double)
        /// The store could not be asked (unreachable, timed out).
        case storeFailed(String, at: Double)
        /// The coordinator doubts its state (a commit fenced, or of unknown outcome): step down, and take the
        /// lease again (a new epoch) once the store answers, to load the state afresh.
        case relinquish(String, at: Double)
    }

    public enum Action: Sendable, Equatable {
        case acquire
        case renew(epoch: UInt64)
        case becomeActive(epoch: UInt64)
        case becomeStandby(reason: String)
        case log(String, warning: Bool)
    }

    public let settings: Settings
    public let holder: String
    public private(set) var role = Role.standby
    /// The epoch this coordinator leads under (0: none).
    public private(set) var epoch: UInt64 = 0
    /// Local (monotonic) time until which this coordinator may act as the leader.
    public private(set) var validUntil = 0.0
    /// The lease as last seen in the store (another's, when standby).
    public private(set) var seen: Lease?
    /// Why this coordinator is not the leader, for status and logs.
    public private(set) var standbyReason = "starting"
    /// Times this coordinator became the leader, and lease renewals.
    public private(set) var failovers = 0
    public private(set) var renewals = 0
    var nextAttempt = 0.0
    var pending = false
    var lastProblem = ""

    public init(settings: Settings, holder: String) {
        self.settings = settings
        self.holder = holder
    }

    public func leads(at now: Double) -> Bool { role == .active && now < validUntil }

    public mutating func handle(_ event: Event) -> [Action] {
        var out: [Action] = []
        switch event {
        case .tick(let now):
            if role == .active, now >= validUntil {
                stepDown("the lease of epoch \(epoch) was not renewed in time (store unreachable or slow: \(lastProblem.isEmpty ? "no answer" : lastProblem))", &out)
            }
            guard !pending, now >= nextAttempt else { break }
            pending = true
            if role == .active {
                nextAttempt = now + settings.renewInterval
                out.append(.renew(epoch: epoch))
            } else {
                nextAttempt = now + settings.retryInterval
                out.append(.acquire)
            }
        case .acquired(let lease, let sentAt, let now):
            pending = false
            recovered(&out)
            seen = lease
            guard role == .standby else { break }
            if lease.holder == holder, lease.isHeld, lease.epoch > epoch {
                role = .active
                epoch = lease.epoch
                validUntil = sentAt + settings.lease - settings.margin
                failovers += 1
                nextAttempt = now + settings.renewInterval
                out.append(.becomeActive(epoch: epoch))
            } else {
                standbyReason = lease.isHeld ? "the lease is held by \(lease.control.isEmpty ? lease.holder : lease.control) (epoch \(lease.epoch))" : "the lease is free; taking it"
            }
        case .renewed(let kept, let sentAt, _):
            pending = false
            recovered(&out)
            guard role == .active else { break }
            if kept {
                renewals += 1
                validUntil = max(validUntil, sentAt + settings.lease - settings.margin)
            } else {
                stepDown("the lease of epoch \(epoch) was taken by another coordinator", &out)
            }
        case .storeFailed(let problem, let now):
            pending = false
            if problem != lastProblem { out.append(.log("the store did not answer: \(problem)", warning: true)) }
            lastProblem = problem
            if role == .standby { standbyReason = "the store is unreachable: \(problem)" }
            nextAttempt = now + settings.retryInterval
        case .relinquish(let reason, let now):
            if role == .active { stepDown(reason, &out) }
            nextAttempt = now
        }
        return out
    }

    mutating func stepDown(_ reason: String, _ out: inout [Action]) {
        role = .standby
        validUntil = 0
        standbyReason = reason
        out.append(.becomeStandby(reason: reason))
    }

    mutating func recovered(_ out: inout [Action]) {
        if !lastProblem.isEmpty { out.append(.log("the store answers again", warning: false)) }
        lastProblem = ""
    }
}
