import ArgumentParser
import Foundation
import VNetBus
import VNetProto
import VNetSystem
import VNetTestSupport
import ZMQ

/// `vnet-bench failover`: coordinators sharing a real PostgreSQL server (initdb in a scratch directory,
/// 127.0.0.1), measured two ways in one run:
/// - durable run-instance requests per second, SQLite against PostgreSQL (the baseline is the embedded store:
///   what sharing the state costs), each request answered only after its commit;
/// - failover: kill -9 of the leader to every agent following the new one (each agent's own log line, so the
///   time includes the lease lapsing, the takeover, the load and the first heartbeat), over `--trials` kills.
struct FailoverBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "failover",
        abstract: "Coordinator failover time on PostgreSQL, and durable run-instance/s on PostgreSQL against SQLite.")

    @Option(help: "Leaders killed.") var trials = 10
    @Option(help: "Run-instance requests per store and round.") var requests = 1000
    @Option(help: "Clients sending them at once.") var clients = 16
    @Option(help: "The coordinators' --lease.") var lease = 3.0
    @Flag(help: "Print JSON.") var json = false

    struct Figures: Encodable {
        var lease: Double
        var trials: Int
        var failoverP50Seconds: Double, failoverP99Seconds: Double, failoverMaxSeconds: Double
        var requests: Int, clients: Int
        var sqliteRunInstancesPerSecond: Double
        var postgresRunInstancesPerSecond: Double
        var postgresOverSQLite: Double
    }

    func validate() throws {
        guard (1...200).contains(trials) else { throw ValidationError("--trials must be 1-200") }
        guard (10...4000).contains(requests), (1...64).contains(clients) else { throw ValidationError("--requests 10-4000, --clients 1-64") }
    }

    func run() throws {
        let postgres = try ScratchPostgres()
        // Throughput: SQLite, PostgreSQL, SQLite, PostgreSQL (interleaved, so drift touches both alike).
        var rates: [String: [Double]] = ["sqlite": [], "postgresql": []]
        for (round, store) in ["sqlite", "postgresql", "sqlite", "postgresql"].enumerated() {
            if store == "postgresql" { try postgres.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public") }
            let lab = try FailoverLab(store: store == "sqlite" ? "sqlite" : postgres.url, coordinators: 1, lease: lease, agents: ["n1"])
            defer { lab.stop() }
            let rate = try lab.runInstances(requests, clients: clients, prefix: UInt32(round) << 24)
            rates[store]!.append(rate)
            if !json { FileHandle.standardError.write(Data(String(format: "failover: %@ %.0f run-instance/s\n", store, rate).utf8)) }
        }
        // Failover.
        try postgres.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        let lab = try FailoverLab(store: postgres.url, coordinators: 2, lease: lease, agents: ["fe", "n1", "n2", "n3"])
        defer { lab.stop() }
        var times: [Double] = []
        for trial in 1...trials {
            times.append(try lab.killLeaderAndWait())
            if !json { FileHandle.standardError.write(Data(String(format: "failover: trial %d/%d %.2f s\n", trial, trials, times.last!).utf8)) }
        }
        let sorted = times.sorted()
        func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)] }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }
        let figures = Figures(lease: lease, trials: trials, failoverP50Seconds: at(0.5), failoverP99Seconds: at(0.99), failoverMaxSeconds: sorted.last!,
                              requests: requests, clients: clients, sqliteRunInstancesPerSecond: mean(rates["sqlite"]!),
                              postgresRunInstancesPerSecond: mean(rates["postgresql"]!),
                              postgresOverSQLite: mean(rates["postgresql"]!) / mean(rates["sqlite"]!))
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(figures), as: UTF8.self))
            return
        }
        print("failover: kill -9 of the leader to every agent (4) following the new one, lease \(lease) s, \(trials) trials")
        print(String(format: "  p50 %.2f s   p99 %.2f s   max %.2f s   (target: under 5 s)", figures.failoverP50Seconds, figures.failoverP99Seconds, figures.failoverMaxSeconds))
        print("durable run-instance/s, \(requests) requests from \(clients) clients, each answered after its commit (mean of 2 rounds)")
        print(String(format: "  SQLite (baseline) %8.0f/s\n  PostgreSQL        %8.0f/s   %.2fx", figures.sqliteRunInstancesPerSecond, figures.postgresRunInstancesPerSecond, figures.postgresOverSQLite))
    }
}

/// Coordinators and recording agents on 127.0.0.1 in a scratch directory.
final class FailoverLab {
    let directory: String
    let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    let store: String
    let lease: Double
    let agents: [String]
    var coordinators: [Process?]
    var others: [Process] = []
    let context = ZMQContext()

    init(store: String, coordinators count: Int, lease: Double, agents: [String]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-failover-bench-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try BenchConfigs.writeNoVLAN(in: directory, addressesPerNetwork: 1024)
        self.store = store
        self.lease = lease
        self.agents = agents
        coordinators = Array(repeating: nil, count: count)
        for index in 0..<count { try startCoordinator(index) }
        let files = (0..<count).map(endpointsFile).joined(separator: ",")
        for name in agents {
            let frontend = name == "fe"
            others.append(try launch("agent-\(name)", ["vnet-agent", "--role", frontend ? "frontend" : "node", "--config", "\(directory)/\(frontend ? "fe" : "node").conf",
                                                       "--endpoints", files, "--node-id", name, "--state-dir", "\(directory)/agent-\(name)", "--insecure",
                                                       "--backend", "recording", "--reconcile-interval", "0"]))
        }
        try wait("every agent UP at the leader", timeout: 30) {
            let nodes = (try? self.call(.listNodes(Vnet_V1_ListNodes())).nodes) ?? []
            return agents.allSatisfy { name in nodes.contains { $0.nodeID == name && $0.state == "UP" } }
        }
        // Four groups of 1021 addresses: room for 4000 instances.
        for index in 0..<4 {
            var group = Vnet_V1_GroupRef()
            group.group = "bench\(index)"
            _ = try call(.createGroup(group))
        }
    }

    func endpointsFile(_ index: Int) -> String { "\(directory)/cc\(index)/\(BusEndpoints.fileName)" }

    func startCoordinator(_ index: Int) throws {
        // Started again, it takes the ports in its endpoints file: the agents' sockets reach it there.
        coordinators[index] = try launch("cc\(index)", ["vnet-coordinator", "--config", "\(directory)/fe.conf", "--state-dir", "\(directory)/cc\(index)",
                                                        "--listen", "127.0.0.1:0", "--insecure", "--frontend", "fe", "--store", store, "--lease", String(lease)])
        try wait("cc\(index)'s endpoints") { FileManager.default.fileExists(atPath: endpointsFile(index)) }
    }

    func stop() {
        for process in coordinators.compactMap({ $0 }) + others where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        if ProcessInfo.processInfo.environment["VNET_BENCH_KEEP"] != nil { FileHandle.standardError.write(Data("kept \(directory)\n".utf8)); return }
        try? FileManager.default.removeItem(atPath: directory)
    }

    func launch(_ name: String, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(binaries)/\(arguments[0])")
        process.arguments = Array(arguments.dropFirst())
        if !FileManager.default.fileExists(atPath: "\(directory)/\(name).log") { FileManager.default.createFile(atPath: "\(directory)/\(name).log", contents: nil) }
        let log = FileHandle(forWritingAtPath: "\(directory)/\(name).log")
        log?.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return process
    }

    func log(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "" }

    func wait(_ what: String, timeout: Double = 20, _ condition: () -> Bool) throws {
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if condition() { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let logs = (coordinators.indices.map { "cc\($0)" } + agents.map { "agent-\($0)" }).map { "--- \($0)\n\(log($0).suffix(1200))" }
        throw BusError("failover: timed out waiting for \(what)\n\(logs.joined(separator: "\n"))")
    }

    func client() throws -> RequestClient {
        try RequestClient(context: context, endpoints: try coordinators.indices.map { try BusEndpoints.load(from: endpointsFile($0)).control },
                          security: .insecure, codec: EnvelopeCodec(clusterID: "vnet"))
    }

    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws -> Vnet_V1_ControlReply {
        var request = Vnet_V1_ControlRequest()
        request.op = op
        return try client().call(request, timeout: 10)
    }

    /// `count` run-instance requests from `clients` threads, each waiting for its answer: answered per second.
    func runInstances(_ count: Int, clients: Int, prefix: UInt32) throws -> Double {
        let failures = Counter()
        let group = DispatchGroup()
        let started = monotonicSeconds()
        for client in 0..<clients {
            let share = count / clients + (client < count % clients ? 1 : 0)
            let rpc = try self.client()
            nonisolated(unsafe) let sender = rpc
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                for index in 0..<share {
                    var run = Vnet_V1_RunInstance()
                    run.instanceID = String(format: "i-%08x", prefix | UInt32(client << 16 | index))
                    run.node = "n1"; run.group = "bench\(index % 4)"
                    var request = Vnet_V1_ControlRequest()
                    request.op = .runInstance(run)
                    if (try? sender.call(request, timeout: 30))?.ok != true { failures.add() }
                }
            }
        }
        group.wait()
        let seconds = monotonicSeconds() - started
        guard failures.value == 0 else { throw BusError("failover: \(failures.value) run-instance requests failed (logs in \(directory))") }
        return Double(count) / seconds
    }

    /// Kills the leader, starts it again as a standby; seconds from the kill to the last agent's log line
    /// saying it follows the new leader.
    func killLeaderAndWait() throws -> Double {
        var leader: Int?
        var epoch: UInt64 = 0
        try wait("a leader") {
            for index in coordinators.indices {
                guard let client = try? RequestClient(context: context, endpoint: BusEndpoints.load(from: endpointsFile(index)).control, security: .insecure,
                                                      codec: EnvelopeCodec(clusterID: "vnet")) else { continue }
                client.followsLeader = false
                var request = Vnet_V1_ControlRequest()
                request.op = .status(Vnet_V1_StatusRequest())
                if let status = try? client.call(request, timeout: 1).status, !status.standby { leader = index; epoch = status.epoch; return true }
            }
            return false
        }
        // At a random point of the renewal period: killed right after a takeover, the leader would always have
        // just renewed, and every trial would measure the worst case.
        Thread.sleep(forTimeInterval: Double.random(in: 1...(1 + lease / 3)))
        let next = epoch + 1
        let before = agents.map { log("agent-\($0)").count }
        let killedAt = Date()
        kill(coordinators[leader!]!.processIdentifier, SIGKILL)
        if ProcessInfo.processInfo.environment["VNET_BENCH_KEEP"] != nil { FileHandle.standardError.write(Data("killed cc\(leader!) at \(killedAt)\n".utf8)) }
        coordinators[leader!]!.waitUntilExit()
        let marker = "leading under epoch \(next);"
        var followed: [Date] = []
        try wait("every agent following epoch \(next)", timeout: 30) {
            followed = []
            for (index, name) in agents.enumerated() {
                let text = log("agent-\(name)")
                let fresh = text.utf8.count > before[index] ? String(text.utf8.dropFirst(before[index])) ?? "" : ""
                guard let line = fresh.split(separator: "\n").first(where: { $0.contains(marker) }),
                      let stamp = Self.timestamp(line) else { return false }
                followed.append(stamp)
            }
            return true
        }
        let starts = log("cc\(leader!)").components(separatedBy: "standing by until it holds the lease").count
        try startCoordinator(leader!)
        try wait("the restarted coordinator standing by") { log("cc\(leader!)").components(separatedBy: "standing by until it holds the lease").count > starts }
        return followed.max()!.timeIntervalSince(killedAt)
    }

    static func timestamp(_ line: Substring) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: String(line.prefix { $0 != " " }))
    }
}

/// A count shared by client threads.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
