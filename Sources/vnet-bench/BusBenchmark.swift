import ArgumentParser
import Foundation
import VNetBus
import VNetSystem
import VNetCore
import VNetProto
import VNetAgent
import ZMQ

/// `vnet-bench bus`: the bus issue's figures, each against its target, in one run.
///
/// - convergence: a real `vnet-coordinator` process and N simulated agents in this process (each its own SUB
///   and DEALER, registered and synchronised like a real agent). One committed change gives each of the N
///   nodes an instance; the latency of a node is from the moment the requests are sent to the moment its
///   new state arrives on its SUB socket.
/// - throughput: the intent path (host state to wire, envelope encode, PUB, SUB, decode, checked back into a
///   host state) against raw libzmq PUB/SUB moving frames of the same size, same run.
/// - detection: an agent stops heartbeating; time until the coordinator reports it DOWN (1 s and 100 ms
///   heartbeats).
/// - durable: acknowledged run-instance requests per second, SQLite synchronous=FULL, several clients.
/// - memory: resident size of a real vnet-agent process, and of the coordinator holding 1000 agents.
struct BusBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bus", abstract: "Measure the bus; print figures against the targets.")

    @Option(help: "Which measurements: all, convergence, throughput, detection, durable, memory.") var only = "all"
    @Flag(help: "Print one JSON object.") var json = false

    struct Figure: Encodable {
        var name: String
        var value: Double
        var unit: String
        var target: String
        var meets: Bool
        var detail: String
    }

    func run() throws {
        var figures: [Figure] = []
        let want = { (name: String) in only == "all" || only == name }
        if want("convergence") || want("memory") {
            for count in [100, 1000] {
                let result = try Convergence.measure(agents: count)
                let target = 50.0
                figures.append(Figure(name: "convergence p50, \(count) agents", value: result.p50 * 1000, unit: "ms", target: "-", meets: true,
                                      detail: "\(result.rounds) rounds"))
                figures.append(Figure(name: "convergence p99, \(count) agents", value: result.p99 * 1000, unit: "ms", target: "< \(Int(target)) ms",
                                      meets: result.p99 * 1000 < target, detail: "max \(String(format: "%.1f", result.max * 1000)) ms"))
                figures.append(Figure(name: "  published p50 / p99, \(count)", value: result.publishedP99 * 1000, unit: "ms", target: "-", meets: true,
                                      detail: String(format: "p50 %.1f ms; one SUB for all nodes on its own thread: the bus without the simulated agents' loop", result.publishedP50 * 1000)))
                if count == 1000 {
                    figures.append(Figure(name: "coordinator resident memory, 1000 agents", value: result.coordinatorMiB, unit: "MiB",
                                          target: "< 150 MiB", meets: result.coordinatorMiB < 150, detail: "VmRSS of the vnet-coordinator process"))
                    // The same rounds with the simulated agents' loop as it was: zmq_poll over all 2000 sockets.
                    let before = try Convergence.measure(agents: count, receive: .zmqPoll)
                    figures.append(Figure(name: "  agents on zmq_poll p50 / p99, 1000", value: before.p99 * 1000, unit: "ms", target: "baseline", meets: true,
                                          detail: String(format: "p50 %.1f ms; published p99 %.1f ms in that run: the benchmark's loop as before", before.p50 * 1000, before.publishedP99 * 1000)))
                }
            }
        }
        if want("memory") {
            let agentMiB = try AgentMemory.measure()
            figures.append(Figure(name: "agent resident memory", value: agentMiB, unit: "MiB", target: "< 20 MiB", meets: agentMiB < 20,
                                  detail: "VmRSS of a synchronised vnet-agent process (recording backend)"))
        }
        if want("throughput") {
            let result = try Throughput.measure()
            figures.append(Figure(name: "raw libzmq PUB/SUB, \(result.bytes)-byte frames", value: result.raw, unit: "msg/s", target: "baseline", meets: true, detail: ""))
            figures.append(Figure(name: "intent path, same size", value: result.intents, unit: "msg/s", target: ">= 0.5x raw",
                                  meets: result.intents >= 0.5 * result.raw,
                                  detail: String(format: "%.2fx raw; framing at the coordinator, header check and decision at the agent", result.intents / result.raw)))
            figures.append(Figure(name: "full decode and check of an applied intent", value: result.fullDecodes, unit: "msg/s", target: "-",
                                  meets: true, detail: "per agent, for intents it applies (one thread)"))
        }
        if want("detection") {
            for (interval, target) in [(1.0, 3.0), (0.1, 0.5)] {
                let result = try Detection.measure(interval: interval, trials: interval < 1 ? 10 : 5)
                figures.append(Figure(name: "failure detection, \(Int(interval * 1000)) ms heartbeats", value: result.max, unit: "s",
                                      target: "< \(target) s", meets: result.max < target,
                                      detail: String(format: "median %.2f s over %d trials (worst shown)", result.median, result.trials)))
            }
        }
        if want("durable") {
            let rate = try Durable.measure(clients: 4, requests: 4000)
            figures.append(Figure(name: "durable run-instance", value: rate, unit: "req/s", target: ">= 2000/s", meets: rate >= 2000,
                                  detail: "4 clients, SQLite WAL synchronous=FULL, acknowledged after commit"))
        }
        if json {
            try printJSON(figures)
        } else {
            var rows = [["MEASUREMENT", "VALUE", "TARGET", "", "DETAIL"]]
            for f in figures {
                let value = f.unit == "msg/s" || f.unit == "req/s" ? String(format: "%.0f %@", f.value, f.unit) : String(format: "%.2f %@", f.value, f.unit)
                rows.append([f.name, value, f.target, f.meets ? "ok" : "MISSES", f.detail])
            }
            print(table(rows), terminator: "")
        }
    }
}

// MARK: shared pieces

/// A coordinator process for a benchmark: release binary next to this one, insecure, on free ports.
final class BenchCoordinator {
    let process = Process()
    let directory: String
    let endpoints: BusEndpoints

    init(heartbeat: Double = 1.0) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-bench-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config = "\(directory)/frontend.conf"
        try benchmarkConfigText().write(toFile: config, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vnet-coordinator")
        process.arguments = ["--config", config, "--state-dir", "\(directory)/state", "--listen", "127.0.0.1:0", "--insecure",
                             "--frontend", "fe", "--heartbeat-interval", String(heartbeat)]
        FileManager.default.createFile(atPath: "\(directory)/coordinator.log", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: "\(directory)/coordinator.log")
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let file = "\(directory)/state/\(BusEndpoints.fileName)"
        let deadline = Date().addingTimeInterval(15)
        while !FileManager.default.fileExists(atPath: file) {
            guard Date() < deadline, process.isRunning else { throw BusError("the coordinator did not start") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        endpoints = try BusEndpoints.load(from: file)
    }

    var residentMiB: Double { residentMiBOf(process.processIdentifier) }

    var logTail: String {
        String(((try? String(contentsOfFile: "\(directory)/coordinator.log", encoding: .utf8)) ?? "").suffix(2000))
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func residentMiBOf(_ pid: Int32) -> Double {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

let codec = EnvelopeCodec(clusterID: "vnet")

/// Simulated agents: real sockets, registration and snapshots like vnet-agent, nothing applied.
///
/// All of them share this process and its one receiving thread, which is the benchmark's own cost and not
/// the bus's: a real agent waits on its own two sockets. How that thread waits matters at 1000 agents
/// (2000 sockets): `zmqPoll` hands every socket to zmq_poll each time (what this benchmark did until issue
/// 16), `epoll` waits on the sockets' descriptors and looks only at those that fired.
final class SimulatedAgents {
    enum Receive: String { case zmqPoll = "zmq_poll", epoll }

    struct Agent {
        var name: String
        var subscriber: ZMQSocket
        var dealer: ZMQSocket
        var held: UInt64 = 0
        var synced = false
    }
    var agents: [Agent] = []
    let context = ZMQContext(maxSockets: 8192)
    let receive: Receive
    private let set = try! ZMQSocketSet()

    init(count: Int, endpoints: BusEndpoints, receive: Receive = .epoll) throws {
        self.receive = receive
        for index in 0..<count {
            let name = String(format: "sim%04d", index)
            let subscriber = try ZMQSocket(context, .sub)
            try subscriber.set(.receiveHighWaterMark, 0)
            try subscriber.subscribe(Array("n/\(name)/".utf8))
            try subscriber.connect(endpoints.publish)
            let dealer = try ZMQSocket(context, .dealer)
            try dealer.connect(endpoints.sync)
            agents.append(Agent(name: name, subscriber: subscriber, dealer: dealer))
            try set.add(subscriber, tag: index * 2)
            try set.add(dealer, tag: index * 2 + 1)
        }
    }

    func send(_ index: Int, _ body: Vnet_V1_Envelope.OneOf_Body) {
        try? agents[index].dealer.send([codec.encode(body)])
        set.mark(index * 2 + 1)
    }

    /// Registers everyone and waits until each holds its snapshot.
    func synchronise(timeout: Double) throws {
        for index in agents.indices {
            var register = Vnet_V1_Register()
            register.nodeID = agents[index].name
            register.interface = "eth0"
            register.bridge = "br0"
            send(index, .register(register))
        }
        let deadline = Date().addingTimeInterval(timeout)
        while agents.contains(where: { !$0.synced }) {
            guard Date() < deadline else { throw BusError("simulated agents did not synchronise in \(timeout) s") }
            _ = poll(timeoutMilliseconds: 50) { _, _ in }
        }
    }

    /// The positions (agent * 2, + 1 for its DEALER) of the sockets that may have messages.
    private func ready(timeoutMilliseconds: Int) -> [Int] {
        switch receive {
        case .zmqPoll:
            let sockets = agents.flatMap { [$0.subscriber, $0.dealer] }
            guard let ready = try? ZMQPoller.readable(sockets, timeoutMilliseconds: timeoutMilliseconds) else { return [] }
            return ready.indices.filter { ready[$0] }
        case .epoll:
            return set.ready(timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    /// Waits up to `timeoutMilliseconds` for messages and takes every one waiting; calls `updated(index,
    /// revision)` for each Intent arriving on a SUB.
    func poll(timeoutMilliseconds: Int, _ updated: (Int, UInt64) -> Void) -> Int {
        var events = 0
        for position in ready(timeoutMilliseconds: timeoutMilliseconds) {
            let index = position / 2, fromSubscriber = position % 2 == 0
            let socket = fromSubscriber ? agents[index].subscriber : agents[index].dealer
            while let message = try? socket.receive(wait: false) {
                events += 1
                guard let payload = message.frames.last, case .success(let body) = codec.decode(payload) else { continue }
                switch body {
                case .registerReply(let reply) where reply.accepted:
                    var request = Vnet_V1_SnapshotRequest()
                    request.nodeID = agents[index].name
                    send(index, .snapshotRequest(request))
                case .intent(let state):
                    if fromSubscriber { updated(index, state.revision) } else { agents[index].synced = true }
                    agents[index].held = state.revision
                default:
                    break
                }
            }
        }
        return events
    }
}

// MARK: measurements

/// One SUB socket for every node's topic, on a thread of its own: when each node's update reached a
/// subscriber, without the simulated agents' shared receive loop in between. The gap between its figures and
/// the agents' is that loop's, the benchmark's own part of the latency.
final class PublicationObserver: @unchecked Sendable {
    private let lock = NSLock()
    private var arrivals: [Double?]
    private var stopped = false
    private let done = DispatchSemaphore(value: 0)

    init(count: Int, endpoint: String) throws {
        arrivals = Array(repeating: nil, count: count)
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            let context = ZMQContext()
            let socket: ZMQSocket
            do {
                socket = try ZMQSocket(context, .sub)
                try socket.set(.receiveHighWaterMark, 0)
                try socket.subscribe(Array("n/sim".utf8))
                try socket.connect(endpoint)
            } catch { failure = error; ready.signal(); return }
            ready.signal()
            while !lock.withLock({ stopped }) {
                guard let readable = try? ZMQPoller.readable([socket], timeoutMilliseconds: 20), readable[0] else { continue }
                while let message = try? socket.receive(wait: false) {
                    let now = monotonicSeconds()
                    // The topic is "n/simNNNN/".
                    guard let topic = message.frames.first, topic.count == 10, let index = Int(String(decoding: topic[5..<9], as: UTF8.self)) else { continue }
                    lock.withLock { if index < arrivals.count, arrivals[index] == nil { arrivals[index] = now } }
                }
            }
        }
        ready.wait()
        if let failure { throw failure }
    }

    /// The first arrival of each node's update since the last call, and a fresh start for the next round.
    func take() -> [Double?] {
        lock.withLock {
            defer { arrivals = Array(repeating: nil, count: arrivals.count) }
            return arrivals
        }
    }

    func stop() {
        lock.withLock { stopped = true }
        done.wait()
    }
}

enum Convergence {
    struct Result {
        var p50: Double, p99: Double, max: Double, rounds: Int, coordinatorMiB: Double
        /// The same rounds as seen by `PublicationObserver`.
        var publishedP50: Double, publishedP99: Double
    }

    static func measure(agents count: Int, receive: SimulatedAgents.Receive = .epoll, rounds: Int = 5) throws -> Result {
        let coordinator = try BenchCoordinator()
        defer { coordinator.stop() }
        let agents = try SimulatedAgents(count: count, endpoints: coordinator.endpoints, receive: receive)
        let observer = try PublicationObserver(count: count, endpoint: coordinator.endpoints.publish)
        defer { observer.stop() }
        try agents.synchronise(timeout: 60)
        Thread.sleep(forTimeInterval: 0.3)  // let the SUB subscriptions settle
        let context = ZMQContext()
        let control = try ZMQSocket(context, .dealer)
        try control.connect(coordinator.endpoints.control)
        // Groups enough for every instance of every round (a network of 64 addresses holds 61 instances).
        let setup = try RequestClient(context: context, endpoint: coordinator.endpoints.control, security: .insecure, codec: codec)
        for index in 0...(count * rounds / 50) {
            var group = Vnet_V1_GroupRef()
            group.group = "g\(index)"
            var request = Vnet_V1_ControlRequest()
            request.op = .createGroup(group)
            guard try setup.call(request, timeout: 10).ok else { throw BusError("cannot create group g\(index)") }
        }
        var latencies: [Double] = [], published: [Double] = []
        var nextInstance: UInt32 = 1
        for _ in 0..<rounds {
            var arrived = [Double?](repeating: nil, count: count)
            _ = observer.take()
            let start = monotonicSeconds()
            // One instance per node, sent together: the coordinator commits them as one batch and publishes
            // every node's new state.
            for index in 0..<count {
                var run = Vnet_V1_RunInstance()
                run.instanceID = String(format: "i-%08x", nextInstance)
                run.node = agents.agents[index].name
                run.group = "g\(nextInstance / 50)"
                nextInstance += 1
                var request = Vnet_V1_ControlRequest()
                request.op = .runInstance(run)
                try control.send([[], codec.encode(.controlRequest(request))])
            }
            let deadline = start + 30
            var pending = count
            while pending > 0, monotonicSeconds() < deadline {
                _ = agents.poll(timeoutMilliseconds: 10) { index, _ in
                    if arrived[index] == nil { arrived[index] = monotonicSeconds() - start; pending -= 1 }
                }
                while (try? control.receive(wait: false)) != nil {}
            }
            guard pending == 0 else { throw BusError("\(pending) of \(count) agents never received their update") }
            latencies += arrived.compactMap { $0 }
            Thread.sleep(forTimeInterval: 0.2)
            let seen = observer.take()
            guard seen.allSatisfy({ $0 != nil }) else { throw BusError("the observer missed \(seen.filter { $0 == nil }.count) updates") }
            published += seen.compactMap { $0.map { $0 - start } }
        }
        let memory = coordinator.residentMiB
        let sorted = latencies.sorted(), publishedSorted = published.sorted()
        return Result(p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.last ?? .nan, rounds: rounds, coordinatorMiB: memory,
                      publishedP50: percentile(publishedSorted, 0.5), publishedP99: percentile(publishedSorted, 0.99))
    }
}

enum AgentMemory {
    static func measure() throws -> Double {
        let coordinator = try BenchCoordinator()
        defer { coordinator.stop() }
        let directory = coordinator.directory
        try "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\n".write(toFile: "\(directory)/node.conf", atomically: true, encoding: .utf8)
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vnet-agent")
        agent.arguments = ["--config", "\(directory)/node.conf", "--endpoints", "\(directory)/state/\(BusEndpoints.fileName)",
                           "--node-id", "n1", "--state-dir", "\(directory)/agent", "--insecure", "--backend", "recording"]
        agent.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try agent.run()
        defer { agent.terminate(); agent.waitUntilExit() }
        // Synchronised and heartbeating for a few seconds: the steady state.
        Thread.sleep(forTimeInterval: 3)
        return residentMiBOf(agent.processIdentifier)
    }
}

enum Throughput {
    struct Result { var raw: Double; var intents: Double; var bytes: Int; var fullDecodes: Double }

    /// A node's state with a few instances: the typical intent.
    static func sampleState() -> HostNetworkState {
        var state = HostNetworkState(host: "node0001", role: .node, mode: .managed)
        state.requiredLinks = ["eth0"]
        state.vlanDevices = [.init(name: "eth0.10", parent: "eth0", vlan: 10)]
        state.bridges = [.init(name: "eucabr10", ports: ["eth0.10"])]
        state.vifs = (1...4).map { .init(name: "vn-0000000\($0)", bridge: "eucabr10", mac: MACAddress(0xD00D_0000_0000 + UInt64($0)), instance: InstanceID(number: UInt32($0)), createTap: true) }
        return state
    }

    static func measure(messages: Int = 300_000) throws -> Result {
        let state = sampleState()
        let stateBytes: [UInt8] = try state.wire.serializedBytes()
        let header = IntentFrame.Header(nodeID: "node0001", epoch: 7, revision: 1, previousRevision: 0, clusterRevision: 1)
        let size = IntentFrame.envelope(clusterID: "vnet", header: header, stateBytes: stateBytes).count
        let raw = try run(messages: messages, produce: { _ in Array(repeating: 7, count: size) }, consume: { _ in true })
        // The coordinator's work per published intent: frame the envelope around the host's state, which was
        // serialized once when it changed. The agent's work per received intent: read the header and decide
        // (apply, ignore, or ask for a snapshot); only an update it will apply is decoded in full.
        let intents = try run(messages: messages, produce: { index in
            IntentFrame.envelope(clusterID: "vnet", header: .init(nodeID: "node0001", epoch: 7, revision: UInt64(index + 1),
                                                                   previousRevision: UInt64(index), clusterRevision: UInt64(index + 1)),
                                  stateBytes: stateBytes)
        }, consume: { frame in
            guard let header = IntentFrame.peek(frame, clusterID: "vnet"), header.nodeID == "node0001" else { return false }
            return SyncDecision.forUpdate(revision: header.revision, previousRevision: header.previousRevision, held: header.previousRevision) == .apply
        })
        // What an applied intent costs on top: full decode and the checks before anything reaches a kernel.
        let decodeStart = monotonicSeconds()
        let frame = IntentFrame.envelope(clusterID: "vnet", header: header, stateBytes: stateBytes)
        let decodes = 50_000
        for _ in 0..<decodes {
            guard case .success(.intent(let message)) = codec.decode(frame), (try? HostNetworkState(wire: message.state)) != nil else {
                throw BusError("the sample intent did not decode")
            }
        }
        let decodeRate = Double(decodes) / (monotonicSeconds() - decodeStart)
        return Result(raw: raw, intents: intents, bytes: size, fullDecodes: decodeRate)
    }

    /// Messages per second from a PUB thread to a SUB thread; the clock runs from the first to the last
    /// message received, so connection set-up is not counted.
    static func run(messages: Int, produce: @escaping @Sendable (Int) -> [UInt8], consume: @escaping @Sendable ([UInt8]) -> Bool) throws -> Double {
        let context = ZMQContext()
        let endpoint = "tcp://127.0.0.1:\(Int.random(in: 20_000...60_000))"
        let ready = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var seconds = 0.0; var ok = true }
        let box = Box()
        let receiver = Thread {
            guard let sub = try? ZMQSocket(context, .sub) else { return }
            try? sub.set(.receiveHighWaterMark, 0)
            try? sub.subscribe([])
            try? sub.connect(endpoint)
            ready.signal()
            var first = 0.0
            for index in 0..<messages + 1 {
                guard let message = try? sub.receive() else { box.ok = false; break }
                if index == 0 { first = monotonicSeconds(); continue }  // the first one only starts the clock
                if !consume(message.frames[1]) { box.ok = false }
            }
            box.seconds = monotonicSeconds() - first
            done.signal()
        }
        let pub = try ZMQSocket(context, .pub)
        try pub.set(.sendHighWaterMark, 0)
        try pub.bind(endpoint)
        receiver.start()
        ready.wait()
        Thread.sleep(forTimeInterval: 0.2)
        let topic = Array("n/node0001/".utf8)
        try pub.send([topic, produce(0)])
        for index in 0..<messages { try pub.send([topic, produce(index)]) }
        done.wait()
        guard box.ok else { throw BusError("a message did not decode") }
        return Double(messages) / box.seconds
    }
}

enum Detection {
    struct Result { var median: Double; var max: Double; var trials: Int }

    static func measure(interval: Double, trials: Int) throws -> Result {
        let coordinator = try BenchCoordinator(heartbeat: interval)
        defer { coordinator.stop() }
        let context = ZMQContext()
        let control = try RequestClient(context: context, endpoint: coordinator.endpoints.control, security: .insecure, codec: codec)
        var times: [Double] = []
        for trial in 0..<trials {
            let name = "hb\(trial)"
            let dealer = try ZMQSocket(context, .dealer)
            try dealer.connect(coordinator.endpoints.sync)
            var register = Vnet_V1_Register()
            register.nodeID = name; register.interface = "eth0"; register.bridge = "br0"
            try dealer.send([codec.encode(.register(register))])
            var heartbeat = Vnet_V1_AgentHeartbeat()
            heartbeat.nodeID = name
            // Heartbeat like an agent for a while, then stop at a random point within an interval.
            let stopAt = monotonicSeconds() + 5 * interval + Double.random(in: 0..<interval)
            var lastBeat = 0.0
            while monotonicSeconds() < stopAt {
                if monotonicSeconds() - lastBeat >= interval {
                    try dealer.send([codec.encode(.agentHeartbeat(heartbeat))])
                    lastBeat = monotonicSeconds()
                }
                while (try? dealer.receive(wait: false)) != nil {}
                Thread.sleep(forTimeInterval: 0.002)
            }
            dealer.close()
            let stopped = monotonicSeconds()
            var request = Vnet_V1_ControlRequest()
            request.op = .listNodes(Vnet_V1_ListNodes())
            while true {
                let nodes = try control.call(request, timeout: 5).nodes
                if nodes.first(where: { $0.nodeID == name }).flatMap({ HostLiveness(rawValue: $0.state) }) == .down { break }
                guard monotonicSeconds() - stopped < 20 else { throw BusError("\(name) never went DOWN") }
                Thread.sleep(forTimeInterval: 0.005)
            }
            times.append(monotonicSeconds() - stopped)
        }
        let sorted = times.sorted()
        return Result(median: percentile(sorted, 0.5), max: sorted.last ?? .nan, trials: trials)
    }
}

enum Durable {
    static func measure(clients: Int, requests: Int) throws -> Double {
        let coordinator = try BenchCoordinator()
        defer { coordinator.stop() }
        // A node to run instances on, and groups with room for them all (61 instances each).
        let context = ZMQContext()
        let registrar = try ZMQSocket(context, .dealer)
        try registrar.connect(coordinator.endpoints.sync)
        var register = Vnet_V1_Register()
        register.nodeID = "n1"; register.interface = "eth0"; register.bridge = "br0"
        try registrar.send([codec.encode(.register(register))])
        let setup = try RequestClient(context: context, endpoint: coordinator.endpoints.control, security: .insecure, codec: codec)
        Thread.sleep(forTimeInterval: 0.3)
        let groups = requests / 50 + 1
        for index in 0..<groups {
            var request = Vnet_V1_ControlRequest()
            var group = Vnet_V1_GroupRef()
            group.group = "g\(index)"
            request.op = .createGroup(group)
            guard try setup.call(request, timeout: 10).ok else { throw BusError("cannot create group g\(index)") }
        }
        let endpoint = coordinator.endpoints.control
        let perClient = requests / clients
        let finished = DispatchSemaphore(value: 0)
        final class Counter: @unchecked Sendable { let lock = NSLock(); var acknowledged = 0 }
        let counter = Counter()
        let start = monotonicSeconds()
        for client in 0..<clients {
            Thread {
                defer { finished.signal() }
                let context = ZMQContext()
                guard let socket = try? ZMQSocket(context, .dealer), (try? socket.connect(endpoint)) != nil else { return }
                // Pipelined: up to 64 requests in flight per client, as a busy front end would send them.
                var sent = 0, received = 0
                while received < perClient {
                    while sent < perClient, sent - received < 64 {
                        let number = client * perClient + sent + 1
                        var run = Vnet_V1_RunInstance()
                        run.instanceID = String(format: "i-%08x", number)
                        run.node = "n1"
                        run.group = "g\(number / 50)"
                        var request = Vnet_V1_ControlRequest()
                        request.requestID = "\(number)"
                        request.op = .runInstance(run)
                        try? socket.send([[], codec.encode(.controlRequest(request))])
                        sent += 1
                    }
                    guard let message = try? socket.receive(), let payload = message.frames.last,
                          case .success(.controlReply(let reply)) = codec.decode(payload) else { continue }
                    received += 1
                    if reply.ok { counter.lock.lock(); counter.acknowledged += 1; counter.lock.unlock() }
                }
            }.start()
        }
        for _ in 0..<clients {
            guard finished.wait(timeout: .now() + 120) == .success else { throw BusError("clients did not finish in 120 s\n\(coordinator.logTail)") }
        }
        let seconds = monotonicSeconds() - start
        guard counter.acknowledged == perClient * clients else { throw BusError("only \(counter.acknowledged) of \(perClient * clients) requests succeeded") }
        return Double(counter.acknowledged) / seconds
    }
}
