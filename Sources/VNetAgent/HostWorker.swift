import Foundation
import VNetCore
import VNetHost
import VNetSystem
import VNetBus
import VNetProto

/// The thread that owns the host backend. Applies, inventories, host checks and diagnoses run here one after
/// another, so the agent's loop (heartbeats, the bus) never waits on the kernel: an iptables-restore, a
/// `dhcpd -t` or a dhcpd restart no longer silences a host. The session never asks for a second apply before
/// the first has finished (its one slot keeps the newest state meanwhile); inventories asked for while one waits
/// are merged into it.
final class HostWorker: @unchecked Sendable {
    enum Job {
        case apply(AgentSession.ApplyJob)
        case inventory(drift: [String])
        case checkHost
        case diagnose(Vnet_V1_DiagnoseCommand, held: HostNetworkState?)
    }

    enum Result {
        case applied(AgentSession.ApplyJob, ApplyReport, seconds: Double, daemonDown: Bool)
        case inventory(HostInventory, drift: [String], dhcpdState: String, iptablesRules: Int)
        case checked(daemonDown: Bool, learned: [LearnedAddress])
        case diagnosed(Vnet_V1_DiagnoseCommand, HostDiagnosis)
    }

    /// What the metrics read of the backend, kept up to date by the worker after every job.
    struct Counters { var dhcpdRestarts = 0; var dhcpdHostChanges = 0; var iptablesRules = 0 }

    private let backend: HostBackend
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var results: [Result] = []
    private var counters = Counters()
    private var stopped = false
    private var thread: Thread?

    init(backend: HostBackend) {
        self.backend = backend
        let thread = Thread { [unowned self] in self.work() }
        thread.name = "vnet-agent host"
        self.thread = thread
        thread.start()
    }

    func submit(_ job: Job) {
        condition.lock()
        defer { condition.unlock() }
        if case .inventory(let drift) = job, let index = jobs.firstIndex(where: { if case .inventory = $0 { true } else { false } }) {
            if case .inventory(let waiting) = jobs[index] { jobs[index] = .inventory(drift: waiting + drift) }
            return
        }
        jobs.append(job)
        condition.signal()
    }

    /// The results finished since the last call, in order.
    func take() -> [Result] {
        condition.lock()
        defer { condition.unlock() }
        let all = results
        results = []
        return all
    }

    var currentCounters: Counters { condition.lock(); defer { condition.unlock() }; return counters }

    /// Lets the job running finish, drops the rest, and returns when the thread is done with the backend.
    func stop() {
        condition.lock()
        stopped = true
        jobs = []
        condition.broadcast()
        condition.unlock()
        while !(thread?.isFinished ?? true) { Thread.sleep(forTimeInterval: 0.005) }
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty, !stopped { condition.wait() }
            if stopped { condition.unlock(); return }
            let job = jobs.removeFirst()
            condition.unlock()
            let result = run(job)
            let now = Counters(dhcpdRestarts: backend.dhcpdRestarts, dhcpdHostChanges: backend.dhcpdHostChanges, iptablesRules: backend.iptablesRules)
            condition.lock()
            results.append(result)
            counters = now
            condition.unlock()
        }
    }

    private func run(_ job: Job) -> Result {
        switch job {
        case .apply(let job):
            let started = monotonicSeconds()
            let report: ApplyReport
            // A whole failure (nothing changed) is the report of one failed object, the host.
            do { report = try backend.apply(job.state, revision: job.revision) } catch {
                report = ApplyReport(failures: [.init(.failed, object: "host", error: "\(error)")])
            }
            return .applied(job, report, seconds: monotonicSeconds() - started, daemonDown: backend.daemonDown)
        case .inventory(let drift):
            return .inventory(backend.inventory(), drift: drift, dhcpdState: backend.dhcpdState, iptablesRules: backend.iptablesRules)
        case .checkHost:
            return .checked(daemonDown: backend.daemonDown, learned: backend.learnedAddresses())
        case .diagnose(let command, let held):
            return .diagnosed(command, backend.diagnose(desired: held))
        }
    }
}
