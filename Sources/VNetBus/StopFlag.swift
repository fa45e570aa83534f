import Foundation
import Synchronization

/// Set by the SIGTERM/SIGINT handler. A lock-free atomic store is async-signal-safe, which is all a signal
/// handler may do.
private let terminationSignalled = Atomic<Bool>(false)

/// Asks an event loop, from any thread (a signal handler, a test), to finish its current turn and return.
public final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    private let watchesSignals = Atomic<Bool>(false)
    public init() {}
    public func stop() { flag.store(true, ordering: .relaxed) }
    public var isStopped: Bool {
        flag.load(ordering: .relaxed) || (watchesSignals.load(ordering: .relaxed) && terminationSignalled.load(ordering: .relaxed))
    }

    /// Makes SIGTERM and SIGINT stop this loop gracefully (sockets closed, state kept). A plain C handler:
    /// libdispatch's signal sources did not deliver here once the signal was set to SIG_IGN.
    /// Call it on the thread that runs the loop: the signals are also unblocked there, since a parent may
    /// have started this process with them blocked (Foundation's Process passes its own mask on).
    public func stopOnTerminationSignals() {
        watchesSignals.store(true, ordering: .relaxed)
        var set = sigset_t()
        sigemptyset(&set)
        for number in [SIGTERM, SIGINT] {
            signal(number) { _ in terminationSignalled.store(true, ordering: .relaxed) }
            sigaddset(&set, number)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
