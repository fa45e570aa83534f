import Foundation
import VNetCore
import VNetHost

/// Keeps the applied state in memory and, when given a file, appends one line per apply
/// (`revision operations`), so tests and benchmarks can count applies across restarts. `applyDelay` makes
/// every apply take that long (a slow host, for the tests of an agent that keeps heartbeating meanwhile).
///
/// A fake, for tests and for `vnet-agent --backend recording` (the bus benchmark runs a thousand agents on one
/// machine with it); it touches no kernel.
public final class RecordingBackend: HostBackend {
    private let lock = NSLock()
    private var held: HostNetworkState?
    private var log: [(revision: UInt64, operations: Int)] = []
    let logPath: String?
    private var delay: Double

    public init(logPath: String? = nil, applyDelay: Double = 0) {
        self.logPath = logPath
        delay = applyDelay
    }

    /// Seconds every apply takes from now on (set from any thread).
    public var applyDelay: Double {
        get { lock.lock(); defer { lock.unlock() }; return delay }
        set { lock.lock(); delay = newValue; lock.unlock() }
    }

    /// The state last applied (read from any thread).
    public var state: HostNetworkState? { lock.lock(); defer { lock.unlock() }; return held }
    /// Every apply so far, in order (read from any thread).
    public var applies: [(revision: UInt64, operations: Int)] { lock.lock(); defer { lock.unlock() }; return log }

    public func apply(_ desired: HostNetworkState, revision: UInt64) throws -> ApplyReport {
        if applyDelay > 0 { Thread.sleep(forTimeInterval: applyDelay) }
        lock.lock()
        let operations = held.map { KernelPlanner.operations(from: $0, to: desired) } ?? KernelPlanner.bringUp(desired)
        held = desired
        log.append((revision, operations.count))
        lock.unlock()
        if let logPath {
            let line = Data("\(revision) \(operations.count)\n".utf8)
            if let handle = FileHandle(forWritingAtPath: logPath) {
                handle.seekToEndOfFile()
                handle.write(line)
                try? handle.close()
            } else {
                FileManager.default.createFile(atPath: logPath, contents: line)
            }
        }
        return ApplyReport(operations: operations.count)
    }

    public func inventory() -> HostInventory { HostInventory() }
    public var dhcpdState: String { "absent" }
    public var iptablesRules: Int { 0 }
    public var dhcpdRestarts: Int { 0 }
    public var dhcpdHostChanges: Int { 0 }
    public var daemonDown: Bool { false }
    public func learnedAddresses() -> [LearnedAddress] { [] }
    public func diagnose(desired: HostNetworkState?) -> HostDiagnosis {
        var diagnosis = HostDiagnosis()
        diagnosis.files = [("backend.txt", Array("this backend touches no kernel; there is nothing on the host to look at\n".utf8))]
        return diagnosis
    }
}
