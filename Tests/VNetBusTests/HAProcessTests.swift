import Foundation
import Testing
import VNetBus
import VNetProto
import VNetTestSupport
import ZMQ

/// Several coordinator processes on one real PostgreSQL server (initdb in a scratch directory, 127.0.0.1),
/// agents listening to all of them: failover under load, fencing of a paused leader, and the server itself
/// restarted under load.
final class HACluster: @unchecked Sendable {
    let cluster: ClusterHarness
    let postgres: ScratchPostgres
    var coordinators: [Process?] = []
    let count: Int

    init(coordinators count: Int = 2, lease: Double = 3) throws {
        cluster = try ClusterHarness()
        postgres = try ScratchPostgres()
        self.count = count
        for index in 0..<count { coordinators.append(try start(index, lease: lease)) }
    }

    deinit {
        for process in coordinators.compactMap({ $0 }) where process.isRunning { kill(process.processIdentifier, SIGCONT); kill(process.processIdentifier, SIGKILL) }
    }

    func endpointsFile(_ index: Int) -> String { "\(cluster.directory)/cc\(index)/\(BusEndpoints.fileName)" }
    var endpointsList: String { (0..<count).map(endpointsFile).joined(separator: ",") }

    func start(_ index: Int, lease: Double = 3) throws -> Process {
        let name = "cc\(index)"
        let before = cluster.log(name).components(separatedBy: "; publish tcp://").count
        let process = try cluster.launch("vnet-coordinator", [
            "--config", cluster.frontendConfig, "--state-dir", "\(cluster.directory)/\(name)", "--listen", "127.0.0.1:0",
            "--keys", cluster.keys, "--frontend", "fe", "--store", postgres.url, "--lease", String(lease), "--metrics", "127.0.0.1:0",
        ], log: "\(cluster.directory)/\(name).log")
        try cluster.waitUntil(timeout: 15, "\(name) says where it listens") {
            cluster.log(name).components(separatedBy: "; publish tcp://").count > before && FileManager.default.fileExists(atPath: self.endpointsFile(index))
        }
        return process
    }

    func startAgent(_ name: String, frontend: Bool = false) throws {
        cluster.agents[name] = try cluster.launch("vnet-agent", [
            "--role", frontend ? "frontend" : "node", "--config", frontend ? cluster.frontendConfig : cluster.nodeConfig,
            "--endpoints", endpointsList, "--node-id", name, "--state-dir", "\(cluster.directory)/agents/\(name)",
            "--key", try cluster.nodeKey(name), "--coordinator-key", "\(cluster.keys)/coordinator.pub", "--backend", "recording",
            "--reconcile-interval", "0",
        ], log: "\(cluster.directory)/agent-\(name).log")
    }

    /// This run's metrics of coordinator `index` (its latest "metrics on" line).
    func metrics(_ index: Int) throws -> ObservabilityTests.Scrape {
        let text = cluster.log("cc\(index)").replacingOccurrences(of: "\\/", with: "/")
        let range = try #require(text.range(of: "metrics on http://", options: .backwards))
        return try ObservabilityTests.scrape(String(text[range.upperBound...].prefix { $0 != "/" }))
    }

    /// vnetctl with every coordinator's endpoints file, as an operator with a list in VNET_COORDINATOR.
    func vnetctl(_ arguments: [String]) throws -> (status: Int32, stdout: String) {
        let process = Process()
        process.executableURL = ClusterHarness.binaries.appendingPathComponent("vnetctl")
        process.arguments = arguments + ["--endpoints", endpointsList, "--key", "\(cluster.keys)/admins/tester.key",
                                         "--coordinator-key", "\(cluster.keys)/coordinator.pub"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func controlEndpoint(_ index: Int) throws -> String { try BusEndpoints.load(from: endpointsFile(index)).control }

    /// A client that follows the leader across every coordinator, as vnetctl with a list.
    func client() throws -> RequestClient {
        try RequestClient(context: cluster.context, endpoints: (0..<count).map(controlEndpoint), security: try cluster.adminSecurity(),
                          codec: EnvelopeCodec(clusterID: "vnet"))
    }

    /// One coordinator's own answer to `status` (no following).
    func status(_ index: Int) throws -> Vnet_V1_Status {
        let client = try RequestClient(context: cluster.context, endpoint: try controlEndpoint(index), security: try cluster.adminSecurity(),
                                       codec: EnvelopeCodec(clusterID: "vnet"))
        var request = Vnet_V1_ControlRequest()
        request.op = .status(Vnet_V1_StatusRequest())
        return try client.call(request, timeout: 3).status
    }

    func leader(among indices: [Int]? = nil) -> Int? {
        (indices ?? Array(0..<count)).first { index in (try? status(index)).map { !$0.standby } ?? false }
    }

    /// The test thread's own client: it remembers the leader, as vnetctl's does within one run.
    var mainClient: RequestClient?
    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op, timeout: Double = 15) throws -> Vnet_V1_ControlReply {
        var request = Vnet_V1_ControlRequest()
        request.op = op
        if mainClient == nil { mainClient = try client() }
        return try mainClient!.call(request, timeout: timeout)
    }

    /// Every agent UP at the leader, its applied revision the desired one.
    func converged(_ names: [String]) throws -> Bool {
        let nodes = Dictionary(uniqueKeysWithValues: try call(.listNodes(Vnet_V1_ListNodes()), timeout: 5).nodes.map { ($0.nodeID, $0) })
        return names.allSatisfy { nodes[$0]?.state == "UP" && nodes[$0]?.appliedRevision == nodes[$0]?.desiredRevision && nodes[$0]?.appliedRevision != 0 }
    }

    /// Waits as the harness does; on a timeout, every coordinator's and agent's log tail goes into the issue.
    func waitUntil(timeout: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () throws -> Bool) throws {
        try cluster.waitUntil(timeout: timeout, what, sourceLocation: sourceLocation, logs: {
            ((0..<self.count).map { "cc\($0)" } + self.cluster.agents.keys.sorted().map { "agent-\($0)" })
                .map { "--- \($0) ---\n\(self.cluster.log($0).suffix(2500))" }.joined(separator: "\n")
        }, condition)
    }

    /// The revisions each agent applied (RecordingBackend's applies.log), in order.
    func applied(_ name: String) -> [String] {
        ((try? String(contentsOfFile: "\(cluster.directory)/agents/\(name)/applies.log", encoding: .utf8)) ?? "")
            .split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
    }
}

/// What clients on several threads sent and were answered.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var acknowledged: Set<String> = []
    private(set) var sent: Set<String> = []
    private(set) var refusals: [String] = []
    private(set) var done = 0
    func send(_ id: String) { lock.lock(); sent.insert(id); lock.unlock() }
    /// `existsIsDone`: "already exists" after a failover means the dead leader carried it out.
    func answer(_ id: String, _ reply: Vnet_V1_ControlReply?, existsIsDone: Bool = true) {
        lock.lock(); defer { lock.unlock() }
        if let reply, reply.ok || (existsIsDone && reply.error.contains("already exists")) { acknowledged.insert(id) }
        else { refusals.append("\(id): \(reply?.error ?? "no reply")") }
        done += 1
    }
    func read<T>(_ body: (Tally) -> T) -> T { lock.lock(); defer { lock.unlock() }; return body(self) }
}

final class ReplyBox: @unchecked Sendable {
    var reply: Vnet_V1_ControlReply?
}

@Suite("High availability on PostgreSQL (processes)", .serialized)
struct HAProcessTests {
    static let nodes = ["n1", "n2", "n3"]

    func bringUp(_ ha: HACluster, groups: Int) throws {
        try ha.startAgent("fe", frontend: true)
        for name in Self.nodes { try ha.startAgent(name) }
        try ha.waitUntil(timeout: 20, "one coordinator leads") { ha.leader() != nil }
        for index in 0..<groups {
            var group = Vnet_V1_GroupRef()
            group.group = "g\(index)"
            let reply = try ha.call(.createGroup(group))
            #expect(reply.ok, "\(reply.error)")
        }
        try ha.waitUntil(timeout: 20, "every agent follows the leader and applied its state") { try ha.converged(["fe"] + Self.nodes) }
    }

    /// What the acceptance names: every acknowledged request present exactly once, nothing allocated twice.
    func checkAllocations(_ ha: HACluster, acknowledged: Set<String>, sent: Set<String>) throws {
        let instances = try ha.call(.describeInstances(Vnet_V1_DescribeInstances())).instances
        let present = instances.map(\.instanceID)
        #expect(Set(present).count == present.count, "an instance listed twice")
        let missing = acknowledged.subtracting(present)
        #expect(missing.isEmpty, "acknowledged but not present: \(missing.sorted().prefix(10))")
        #expect(Set(present).isSubset(of: sent), "present but never sent")
        #expect(Set(instances.map(\.address)).count == instances.count, "an address twice")
        #expect(Set(instances.map(\.mac)).count == instances.count, "a MAC twice")
        let publics = instances.map(\.publicIp).filter { $0 != 0 }
        #expect(Set(publics).count == publics.count, "a public address twice")
        let groups = try ha.call(.describeGroups(Vnet_V1_DescribeGroups())).groups
        #expect(Set(groups.map(\.networkIndex)).count == groups.count, "a network (VLAN) twice")
        // The database agrees, by its own constraints and counts.
        let rows = try ha.postgres.psql("SELECT count(*), count(DISTINCT address), count(DISTINCT mac) FROM instances").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(rows == "\(present.count)|\(present.count)|\(present.count)", "\(rows)")
    }

    @Test func killingTheLeaderDuring500RunInstancesLosesNothingAndDuplicatesNothing() throws {
        let ha = try HACluster()
        try bringUp(ha, groups: 10)
        let first = try #require(ha.leader())
        let before = Dictionary(uniqueKeysWithValues: (["fe"] + Self.nodes).map { ($0, ha.applied($0)) })

        // 5 clients, 100 run-instance each, one request in flight per client; 40 ask for a public address.
        let tally = Tally()
        let group = DispatchGroup()
        for client in 0..<5 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                guard let rpc = try? ha.client() else { return }
                for index in 0..<100 {
                    let number = client * 100 + index
                    let id = String(format: "i-%08x", number + 1)
                    var request = Vnet_V1_ControlRequest()
                    request.op = runInstance(id, node: Self.nodes[number % 3], group: "g\(number % 10)", publicIP: number % 12 == 0 ? "auto" : "")
                    tally.send(id)
                    // Carried out by the leader that died before answering: present once, refused the second time.
                    tally.answer(id, try? rpc.call(request, timeout: 30))
                }
            }
        }
        try ha.waitUntil(timeout: 60, "150 of the 500 are answered") { tally.read { $0.done >= 150 } }
        ha.cluster.kill9(ha.coordinators[first])
        let killed = Date()
        let standby = 1 - first
        try ha.waitUntil(timeout: 10, "the standby takes over") { ha.leader(among: [standby]) == standby }
        let tookOver = Date().timeIntervalSince(killed)
        #expect(tookOver < 5, "took over in \(tookOver) s with a 3 s lease")
        #expect(group.wait(timeout: .now() + 120) == .success, "every client finished")
        let (acked, all, refused) = tally.read { ($0.acknowledged, $0.sent, $0.refusals) }
        #expect(all.count == 500)
        #expect(refused.isEmpty, "refused: \(refused.prefix(5))")
        #expect(acked.count == 500)
        try checkAllocations(ha, acknowledged: acked, sent: all)
        let status = try ha.status(standby)
        #expect(status.epoch == 2 && status.failovers == 1 && !status.standby)

        try ha.waitUntil(timeout: 30, "every agent converges to the new leader's state") { try ha.converged(["fe"] + Self.nodes) }
        for name in ["fe"] + Self.nodes {
            let applied = ha.applied(name)
            #expect(Set(applied).count == applied.count, "\(name) applied a revision twice: \(applied)")
            #expect(applied.starts(with: before[name]!), "\(name)'s history continues")
            let log = ha.cluster.log("agent-\(name)")
            #expect(log.contains("following coordinator #\(standby + 1), leading under epoch 2"), "\(name) follows the new leader")
        }
        #expect(ha.cluster.log("cc\(standby)").contains("leading under epoch 2"))

        // The operator's view: vnetctl with both coordinators, one gone; the survivor's metrics.
        let shown = try ha.vnetctl(["status"])
        #expect(shown.status == 0, "\(shown.stdout)")
        let lines = shown.stdout.split(separator: "\n")
        #expect(lines.first?.contains("epoch 2, revision") == true, "\(shown.stdout)")
        let survivor = try ha.controlEndpoint(standby), dead = try ha.controlEndpoint(first)
        #expect(lines.contains { $0.hasPrefix(survivor) && $0.contains(" leader ") && $0.contains(" 2 ") }, "\(shown.stdout)")
        #expect(lines.contains { $0.hasPrefix(dead) && $0.contains("unreachable") }, "\(shown.stdout)")
        let metrics = try ha.metrics(standby)
        #expect(metrics["vnet_coordinator_leader"] == 1 && metrics["vnet_coordinator_epoch"] == 2)
        #expect(metrics["vnet_coordinator_failovers_total"] == 1)
        #expect((metrics["vnet_coordinator_lease_renewals_total"] ?? 0) > 0)
    }

    @Test func aPausedLeaderNeverCommitsAgainAndAgentsNeverGoBackToIt() throws {
        let ha = try HACluster()
        try bringUp(ha, groups: 1)
        let first = try #require(ha.leader())
        let other = 1 - first
        let paused = try #require(ha.coordinators[first])
        // A client of the paused one alone, its request queued while it sleeps.
        let direct = try RequestClient(context: ha.cluster.context, endpoint: try ha.controlEndpoint(first), security: try ha.cluster.adminSecurity(),
                                       codec: EnvelopeCodec(clusterID: "vnet"))
        kill(paused.processIdentifier, SIGSTOP)
        try ha.waitUntil(timeout: 10, "the other takes over") { ha.leader(among: [other]) == other }
        #expect(try ha.call(runInstance("i-00000001", node: "n1", group: "g0")).ok)
        try ha.waitUntil(timeout: 15, "every agent follows the new leader") { try ha.converged(["fe"] + Self.nodes) }

        var late = Vnet_V1_ControlRequest()
        late.op = runInstance("i-000000ff", node: "n2", group: "g0")
        let answer = DispatchSemaphore(value: 0)
        let box = ReplyBox()
        direct.followsLeader = false
        nonisolated(unsafe) let client = direct
        let request = late
        Thread.detachNewThread {
            box.reply = try? client.call(request, timeout: 10)
            answer.signal()
        }
        Thread.sleep(forTimeInterval: 0.3)
        kill(paused.processIdentifier, SIGCONT)
        #expect(answer.wait(timeout: .now() + 15) == .success)
        let refused = try #require(box.reply)
        #expect(!refused.ok)
        #expect(refused.errorKind == "notLeader" || refused.error.contains("no longer leads"), "\(refused.error)")
        let woke = try ha.status(first)
        #expect(woke.standby, "the woken coordinator stands by")
        #expect(woke.leaderEpoch == 2)
        #expect(try ha.postgres.psql("SELECT count(*) FROM instances WHERE id = 255").trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(ha.cluster.log("cc\(first)").contains("stepping down from epoch 1"))
        Thread.sleep(forTimeInterval: 1.2)  // a metrics refresh after waking
        let woken = try ha.metrics(first)
        #expect(woken["vnet_coordinator_leader"] == 0 && woken["vnet_coordinator_epoch"] == 1)
        let standingBy = try ha.vnetctl(["status", "--json"])
        #expect(standingBy.status == 0 && standingBy.stdout.contains("\"role\" : \"standby\""), "\(standingBy.stdout)")
        // Agents stay with epoch 2: three heartbeats later they are still UP at the leader, none followed back.
        Thread.sleep(forTimeInterval: 3)
        #expect(try ha.converged(["fe"] + Self.nodes))
        for name in ["fe"] + Self.nodes {
            let log = ha.cluster.log("agent-\(name)")
            #expect(!log.contains("following coordinator #\(first + 1), leading under epoch 3"))
            let lines = log.components(separatedBy: "following coordinator #")
            #expect(lines.last?.hasPrefix("\(other + 1), leading under epoch 2") == true, "\(name) last followed #\(other + 1)")
        }
    }

    @Test func postgresRestartedUnderLoadIsRefusedClearlyAndComesBack() throws {
        let ha = try HACluster()
        try bringUp(ha, groups: 10)
        let tally = Tally()
        let stop = StopFlag()
        defer { stop.stop() }  // the client lets the cluster go (and its server stop) also when the test fails
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            defer { finished.signal() }
            guard let rpc = try? ha.client() else { return }
            var number = 0
            while !stop.isStopped {
                number += 1
                let id = String(format: "i-%08x", number)
                var request = Vnet_V1_ControlRequest()
                request.op = runInstance(id, node: Self.nodes[number % 3], group: "g\(number % 10)")
                tally.send(id)
                let reply = try? rpc.call(request, timeout: 5)
                tally.answer(id, reply, existsIsDone: false)
                // About 40 a second: the groups' 610 addresses last the test.
                Thread.sleep(forTimeInterval: reply?.ok == true ? 0.025 : 0.1)
            }
        }
        Thread.sleep(forTimeInterval: 1)
        try ha.postgres.stop(mode: "fast")
        Thread.sleep(forTimeInterval: 4)
        let (duringOutage, ackedBefore) = tally.read { ($0.refusals, $0.acknowledged.count) }
        try ha.postgres.start()
        do {
            try ha.waitUntil(timeout: 20, "requests succeed again, with the same coordinators") {
                tally.read { $0.acknowledged.count > ackedBefore + 5 }
            }
        } catch {
            Issue.record("refusals: \(tally.read { $0.refusals.suffix(20) })")
            throw error
        }
        stop.stop()
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(!duringOutage.isEmpty, "requests were refused while the server was down")
        for refusal in duringOutage {
            #expect(refusal.contains("postgresql://vnet@127.0.0.1:\(ha.postgres.port)/vnet") || refusal.contains("no coordinator leads now"),
                    "a clear refusal: \(refusal)")
        }
        let (acked, all) = tally.read { ($0.acknowledged, $0.sent) }
        try checkAllocations(ha, acknowledged: acked, sent: all)
        #expect(ha.coordinators.allSatisfy { $0?.isRunning == true }, "no coordinator restarted or died")
        try ha.waitUntil(timeout: 20, "every agent converges") { try ha.converged(["fe"] + Self.nodes) }
        for name in ["fe"] + Self.nodes {
            let applied = ha.applied(name)
            #expect(Set(applied).count == applied.count, "\(name) applied a revision twice: \(applied)")
        }
    }
}
