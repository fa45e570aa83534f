import Foundation
import Testing
import VNetAgent
import VNetBus
import VNetCore
import VNetProto
import VNetSystem
import VNetTestSupport
import ZMQ

/// The agent's driver against real sockets: a host whose apply takes 10 s keeps heartbeating, and a snapshot
/// that arrives after a newer update is not applied. The waits are on what the daemons say (the coordinator's
/// listing, the agent's log and applies), not on fixed sleeps.
@Suite("A slow host and a late snapshot, over real sockets")
struct SlowHostTests {
    /// An in-process agent on its own thread, stopped (and its thread waited for) when released.
    final class RunningAgent: @unchecked Sendable {
        let agent: Agent
        let thread: Thread
        init(_ agent: Agent) {
            self.agent = agent
            // The agent is used by its own thread only, once started (stop() sets a flag that is safe to share).
            nonisolated(unsafe) let running = agent
            thread = Thread { running.run() }
            thread.start()
        }
        deinit {
            agent.stop()
            while !thread.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        }
    }

    @Test func aTenSecondApplyKeepsTheNodeUpAndTheNewestOfTheUpdatesMeanwhileIsAppliedNext() throws {
        let cluster = try ClusterHarness()
        try cluster.startCoordinator()
        let backend = RecordingBackend()
        var options = AgentOptions(nodeID: "n1", coordinator: try BusEndpoints.load(from: cluster.endpointsFile), stateDirectory: "\(cluster.directory)/agents/n1")
        options.keys = try CurveKeys.readPair(secretKeyFile: try cluster.nodeKey("n1"))
        options.coordinatorPublicKey = try CurveKeys.readKey("\(cluster.keys)/coordinator.pub")
        options.mode = .managed
        options.heartbeatInterval = cluster.heartbeat
        let running = RunningAgent(try Agent(options: options, backend: backend))
        try cluster.waitUntil(timeout: 15, "n1 is UP and applied its first state") {
            let node = try cluster.nodes()["n1"]
            return node?.state == "UP" && node?.appliedRevision != 0 && node?.appliedRevision == node?.desiredRevision
        }
        var group = Vnet_V1_GroupRef()
        group.group = "web"
        #expect(try cluster.control(.createGroup(group)).ok)

        backend.applyDelay = 10
        #expect(try cluster.control(runInstance("i-0000a001", node: "n1", group: "web")).ok)
        var slow: UInt64 = 0
        try cluster.waitUntil(timeout: 5, "the coordinator shows n1 applying") {
            slow = try cluster.nodes()["n1"]?.applyingRevision ?? 0
            return slow != 0
        }
        let started = monotonicSeconds()
        backend.applyDelay = 0  // read when an apply starts: the next one is quick
        // Three more changes while the slow apply runs.
        for index in 2...4 { #expect(try cluster.control(runInstance(String(format: "i-0000a%03d", index), node: "n1", group: "web")).ok) }
        let newest = try #require(try cluster.nodes()["n1"]?.desiredRevision)
        #expect(newest > slow)
        // Every quarter second until the slow apply is over: the node's state and the age of its last heartbeat.
        var states: Set<String> = []
        var oldest: UInt64 = 0
        var samples = 0
        while monotonicSeconds() - started < 9.5 {
            let node = try #require(try cluster.nodes()["n1"])
            guard node.applyingRevision == slow else { break }
            states.insert(node.state)
            oldest = max(oldest, node.heartbeatAgeMs)
            samples += 1
            Thread.sleep(forTimeInterval: 0.25)
        }
        print("slow-host: \(samples) samples over \(String(format: "%.1f", monotonicSeconds() - started)) s of a 10 s apply; states \(states.sorted()); oldest heartbeat \(oldest) ms (interval \(Int(cluster.heartbeat * 1000)) ms)")
        #expect(samples >= 30, "the apply was watched for most of its 10 s")
        #expect(states == ["UP"], "UP throughout the apply")
        #expect(oldest < UInt64(cluster.heartbeat * 1500), "a heartbeat every interval while applying (oldest seen: \(oldest) ms)")
        try cluster.waitUntil(timeout: 15, "n1 applied the newest revision") {
            let node = try cluster.nodes()["n1"]
            return node?.appliedRevision == newest && node?.applyingRevision == 0
        }
        // After the slow apply, the newest state only (applied again by the periodic reconcile, never older).
        let revisions = backend.applies.map(\.revision)
        let after = revisions.drop { $0 != slow }.dropFirst()
        #expect(revisions.contains(slow) && !after.isEmpty && Set(after) == [newest], "applies: \(revisions)")
        #expect(backend.state?.vifs.count == 4)
        withExtendedLifetime(running) {}
    }

    /// A coordinator scripted by the test, on real sockets, against the real `vnet-agent` process: it answers
    /// the agent's snapshot request only after a newer update was applied, with an older revision.
    @Test func aSnapshotOlderThanTheHeldRevisionIsNotAppliedByTheAgentProcess() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-late-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let context = ZMQContext()
        let publisher = try ZMQSocket(context, .pub)
        let router = try ZMQSocket(context, .router)
        defer { publisher.close(); router.close() }
        try publisher.bind("tcp://127.0.0.1:*")
        try router.bind("tcp://127.0.0.1:*")
        let endpoints = BusEndpoints(publish: publisher.lastEndpoint, sync: router.lastEndpoint, control: "tcp://127.0.0.1:1")
        try endpoints.write(to: "\(directory)/endpoints.json")
        try "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\n".write(toFile: "\(directory)/node.conf", atomically: true, encoding: .utf8)
        let agent = Process()
        agent.executableURL = ClusterHarness.binaries.appendingPathComponent("vnet-agent")
        agent.arguments = ["--insecure", "--backend", "recording", "--endpoints", "\(directory)/endpoints.json", "--node-id", "n1",
                           "--state-dir", "\(directory)/agent", "--config", "\(directory)/node.conf", "--heartbeat-interval", "0.5"]
        let logPath = "\(directory)/agent.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        agent.standardOutput = log
        agent.standardError = log
        try agent.run()
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL); agent.waitUntilExit() } }

        let codec = EnvelopeCodec(clusterID: "vnet")
        let epoch: UInt64 = 4242  // the intents are made as the session tests make them (AgentSessionTests)
        func applied() -> [String] {
            ((try? String(contentsOfFile: "\(directory)/agent/applies.log", encoding: .utf8)) ?? "").split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        }
        var heldRequest: [UInt8]?  // the identity of the agent whose snapshot request is being held back
        var answered = false
        let deadline = monotonicSeconds() + 20
        var nextPublish = 0.0
        while monotonicSeconds() < deadline {
            if (try ZMQPoller.readable([router], timeoutMilliseconds: 50)).first == true {
                while let message = try router.receive(wait: false) {
                    guard message.frames.count == 2, case .success(let body) = codec.decode(message.frames[1]) else { continue }
                    let identity = message.frames[0]
                    switch body {
                    case .register:
                        var reply = Vnet_V1_RegisterReply()
                        reply.accepted = true; reply.epoch = epoch
                        try router.send([identity, codec.encode(.registerReply(reply))])
                    case .agentHeartbeat:
                        var reply = Vnet_V1_CoordinatorHeartbeat()
                        reply.epoch = epoch; reply.desiredRevision = 5
                        try router.send([identity, codec.encode(.coordinatorHeartbeat(reply))])
                    case .snapshotRequest:
                        if heldRequest == nil { heldRequest = identity }
                    default: break
                    }
                }
            }
            let now = monotonicSeconds()
            if heldRequest != nil, !applied().contains("5"), now >= nextPublish {
                // Revision 5 continues the agent's history (it holds 0); published until it is applied (a SUB
                // joins a moment after it connects).
                nextPublish = now + 0.2
                try publisher.send([Array("n/n1/".utf8), AgentSessionTests.update(5, previous: 0, state: 5, epoch: epoch)])
            }
            if let identity = heldRequest, !answered, applied().contains("5") {
                // The reply to the request made before 5 came: revision 3, an older state.
                try router.send([identity, AgentSessionTests.snapshot(3, state: 3, epoch: epoch)])
                answered = true
            }
            if answered, ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("older than the revision held") { break }
        }
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        #expect(answered, "the agent applied revision 5 and the late snapshot was sent: \(text)")
        #expect(text.contains("the coordinator offers revision 3, older than the revision held (5): not applied"), "\(text)")
        #expect(applied() == ["5"], "revision 3 was never applied: \(applied())")
        #expect(AppliedRecord.load(from: "\(directory)/agent")?.revision == 5)
    }
}
