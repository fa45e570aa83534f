import Foundation
import Synchronization

/// Asks an event loop, from any thread (a signal handler's queue, a test), to finish its current turn and
/// return.
public final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func stop() { flag.store(true, ordering: .relaxed) }
    public var isStopped: Bool { flag.load(ordering: .relaxed) }

    /// Stops on SIGTERM and SIGINT; keep the returned sources alive as long as the loop runs.
    public func stopOnTerminationSignals() -> [any DispatchSourceSignal] {
        [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in stop() }
            source.resume()
            return source
        }
    }
}
