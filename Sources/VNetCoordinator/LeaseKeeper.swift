import Foundation
import VNetStore
import VNetSystem
import VNetBus

/// Drives `Leadership` on a thread of its own, with a store connection of its own: a renewal is never held up
/// by a large commit on the coordinator's loop, nor the loop by a store that stopped answering. The loop reads
/// `view()` each turn and acts on it.
public final class LeaseKeeper: @unchecked Sendable {
    public struct View: Sendable {
        public var role: Leadership.Role
        public var epoch: UInt64
        public var validUntil: Double
        public var seen: Lease?
        public var standbyReason: String
        public var failovers: Int
        public var renewals: Int

        public func leads(at now: Double) -> Bool { role == .active && now < validUntil }
    }

    let store: LeaseStore
    let settings: Leadership.Settings
    /// Set before `start` (the endpoint is known once the coordinator has bound its sockets).
    public var control: String
    private let lock = NSLock()
    private var leadership: Leadership
    private let stopped = StopFlag()
    private var thread: Thread?
    let onLog: @Sendable (String, Bool) -> Void

    /// `control`: this coordinator's control endpoint as clients reach it, written into the lease so that
    /// standbys can send clients there.
    public init(store: LeaseStore, settings: Leadership.Settings, control: String, log: @escaping @Sendable (String, Bool) -> Void) {
        self.store = store
        self.control = control
        self.settings = settings
        leadership = Leadership(settings: settings, holder: "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UInt32.random(in: 0...UInt32.max))")
        onLog = log
    }

    public var holder: String { leadership.holder }

    public func view() -> View {
        lock.lock(); defer { lock.unlock() }
        return View(role: leadership.role, epoch: leadership.epoch, validUntil: leadership.validUntil, seen: leadership.seen,
                    standbyReason: leadership.standbyReason, failovers: leadership.failovers, renewals: leadership.renewals)
    }

    /// Steps down now; the lease is taken again (under a new epoch) when the store answers.
    public func relinquish(_ reason: String) {
        _ = handle(.relinquish(reason, at: monotonicSeconds()))
    }

    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "vnet-lease"
        self.thread = thread
        thread.start()
    }

    /// Stops, and if leading lets the lease lapse at once so that a standby takes over without waiting.
    public func stop() {
        stopped.stop()
        while thread?.isFinished == false { Thread.sleep(forTimeInterval: 0.01) }
        let current = view()
        if current.role == .active { try? store.release(epoch: current.epoch) }
    }

    func handle(_ event: Leadership.Event) -> [Leadership.Action] {
        lock.lock(); defer { lock.unlock() }
        return leadership.handle(event)
    }

    func run() {
        while !stopped.isStopped {
            for action in handle(.tick(at: monotonicSeconds())) { perform(action) }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    func perform(_ action: Leadership.Action) {
        let sent = monotonicSeconds()
        var next: [Leadership.Action] = []
        switch action {
        case .acquire:
            do {
                let lease = try store.acquire(holder: holder, control: control, seconds: settings.lease)
                next = handle(.acquired(lease, sentAt: sent, at: monotonicSeconds()))
            } catch { next = handle(.storeFailed("\(error)", at: monotonicSeconds())) }
        case .renew(let epoch):
            do {
                let kept = try store.renew(epoch: epoch, seconds: settings.lease)
                next = handle(.renewed(kept, sentAt: sent, at: monotonicSeconds()))
            } catch { next = handle(.storeFailed("\(error)", at: monotonicSeconds())) }
        case .becomeActive, .becomeStandby: break  // the coordinator's loop acts on them, and says so
        case .log(let text, let warning): onLog(text, warning)
        }
        for action in next { perform(action) }
    }
}
