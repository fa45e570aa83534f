import Foundation
import SwiftProtobuf
import VNetBus
import VNetSystem
import VNetCore
import VNetHost
import VNetProto
import ZMQ
import Logging

/// How an agent runs; built by `vnet-agent` from its flags and eucalyptus.conf.
public struct AgentOptions: Sendable {
    public var nodeID: String
    public var clusterID = "vnet"
    /// Every coordinator of the cluster (one, or several sharing a PostgreSQL store): the agent listens to all
    /// and follows the leader (AgentSession).
    public var coordinators: [BusEndpoints]
    public var stateDirectory: String
    /// The node's VNET_INTERFACE and VNET_BRIDGE, reported at registration.
    public var interface = "eth0"
    public var bridge = "br0"
    public var heartbeatInterval = 1.0
    /// Seconds between re-applying the held state, which repairs what was changed by hand (0: never).
    public var reconcileInterval = 10.0
    /// nil: plain text (`--insecure`).
    public var keys: ZMQCurve.KeyPair?
    public var coordinatorPublicKey: String?
    /// Runs this host's side of VLAN verifications; nil: the agent answers that it cannot.
    public var prober: VLANProbing?
    /// What the host hears of its switch port (LLDP on VNET_INTERFACE), for the inventory; nil: nothing.
    public var neighbors: NeighborDiscovery?
    /// Whether the agent keeps metrics (it is served them with `--metrics`).
    public var metrics = false
    /// The host's VNET_MODE and the role the agent was started with, said at registration: a coordinator of
    /// another mode, or one whose front end this host is not (or is), refuses the registration.
    public var mode: NetworkMode?
    public var role: HostRole = .node

    public init(nodeID: String, coordinator: BusEndpoints, stateDirectory: String) {
        self.init(nodeID: nodeID, coordinators: [coordinator], stateDirectory: stateDirectory)
    }

    public init(nodeID: String, coordinators: [BusEndpoints], stateDirectory: String) {
        self.nodeID = nodeID
        self.coordinators = coordinators
        self.stateDirectory = stateDirectory
    }
}

/// What the agent remembers across restarts: the revision it applied and a digest of that state, so that a
/// restarted agent does not apply again what the host already has.
public struct AppliedRecord: Codable, Equatable, Sendable {
    public var revision: UInt64
    public var digest: UInt64

    public init(revision: UInt64, digest: UInt64) { self.revision = revision; self.digest = digest }

    static func path(in stateDirectory: String) -> String { "\(stateDirectory)/applied.json" }

    /// The record kept in an agent's state directory, if there is one (`vnet-agent diagnose` reads it too).
    public static func load(from stateDirectory: String) -> AppliedRecord? {
        FileManager.default.contents(atPath: path(in: stateDirectory)).flatMap { try? JSONDecoder().decode(AppliedRecord.self, from: $0) }
    }
}

/// The node agent: subscribes to its host's desired state, applies it through a `HostBackend`, acknowledges
/// the revision, heartbeats and reports inventory.
///
/// The protocol is `AgentSession` (a value: events in, actions out); this class is its driver. One thread
/// polls SUB (updates, coordinator heartbeats) and DEALER (registration, snapshots, heartbeats, reports) and
/// carries the session's actions out; the host backend lives on `HostWorker`'s thread, so a slow apply never
/// holds a heartbeat. It never tears anything down because the coordinator is silent or restarted: only a
/// desired state that says so changes the host.
public final class Agent {
    public let options: AgentOptions
    let codec: EnvelopeCodec
    let context = ZMQContext()
    /// A SUB and a DEALER per coordinator, in the order of `options.coordinators`.
    let subscribers: [ZMQSocket]
    let dealers: [ZMQSocket]
    let worker: HostWorker
    public let stopFlag = StopFlag()
    var session: AgentSession
    /// SYSTEM mode: the instance addresses last reported in an inventory.
    var reportedLearned: [LearnedAddress] = []
    let probeOutbox = ProbeOutbox()
    let logger: Logger
    /// Served by `MetricsServer` when the daemon is given `--metrics`.
    public let metrics: MetricsRegistry

    var held: UInt64 { session.held }
    var recordPath: String { AppliedRecord.path(in: options.stateDirectory) }

    public init(options: AgentOptions, backend: HostBackend) throws {
        self.options = options
        codec = EnvelopeCodec(clusterID: options.clusterID)
        logger = Log.logger("agent", metadata: ["node": "\(options.nodeID)"])
        metrics = MetricsRegistry(enabled: options.metrics)
        Self.declareMetrics(metrics)
        if let problem = NameRules.hostNameProblem(options.nodeID) { throw BusError("--node-id: \(problem)") }
        try FileManager.default.createDirectory(atPath: options.stateDirectory, withIntermediateDirectories: true)
        var settings = AgentSession.Settings(nodeID: options.nodeID, clusterID: options.clusterID, heartbeatInterval: options.heartbeatInterval,
                                             reconcileInterval: options.reconcileInterval, canProbe: options.prober != nil)
        settings.inventoryInterval = 10
        guard !options.coordinators.isEmpty, options.coordinators.count <= 16 else { throw BusError("1 to 16 coordinators, not \(options.coordinators.count)") }
        settings.coordinators = options.coordinators.count
        session = AgentSession(settings: settings, applied: AppliedRecord.load(from: options.stateDirectory), at: monotonicSeconds())
        let security: SocketSecurity
        if let keys = options.keys, let server = options.coordinatorPublicKey {
            security = .curveClient(keys: keys, serverPublicKey: server)
        } else {
            security = .insecure
        }
        var subscribers: [ZMQSocket] = [], dealers: [ZMQSocket] = []
        for coordinator in options.coordinators {
            let subscriber = try ZMQSocket(context, .sub)
            let dealer = try ZMQSocket(context, .dealer)
            try security.apply(to: subscriber)
            try security.apply(to: dealer)
            try subscriber.set(.receiveHighWaterMark, 100_000)
            for socket in [subscriber, dealer] {
                try socket.set(.heartbeatInterval, Int32(options.heartbeatInterval * 1000))
                try socket.set(.heartbeatTimeout, Int32(options.heartbeatInterval * 3000))
                try socket.set(.reconnectInterval, 100)
                try socket.set(.reconnectIntervalMax, 2000)
            }
            try subscriber.subscribe(Array("n/\(options.nodeID)/".utf8))
            try subscriber.subscribe(Array("hb/".utf8))
            try subscriber.connect(coordinator.publish)
            try dealer.connect(coordinator.sync)
            subscribers.append(subscriber)
            dealers.append(dealer)
        }
        self.subscribers = subscribers
        self.dealers = dealers
        worker = HostWorker(backend: backend)
    }

    public func stop() { stopFlag.stop() }

    public func run() {
        var nextMetrics = 0.0
        var nextNeighborCheck = 0.0
        var heardNeighbors: [LLDPNeighbor] = []
        while !stopFlag.isStopped {
            let count = subscribers.count
            let ready = (try? ZMQPoller.readable(subscribers + dealers, timeoutMilliseconds: 20)) ?? Array(repeating: false, count: 2 * count)
            for index in 0..<count where ready[index] {
                perform(session.handle(.received(drain(subscribers[index], frames: 2), fromPublisher: true, source: index, at: monotonicSeconds())))
            }
            for index in 0..<count where ready[count + index] {
                perform(session.handle(.received(drain(dealers[index], frames: 1), fromPublisher: false, source: index, at: monotonicSeconds())))
            }
            for result in worker.take() { finished(result) }
            for report in probeOutbox.take() { perform(session.handle(.probeFinished(report, at: monotonicSeconds()))) }
            let now = monotonicSeconds()
            // A switch port heard, changed or gone is reported at once, not at the next inventory.
            if let neighbors = options.neighbors, now >= nextNeighborCheck {
                nextNeighborCheck = now + 0.5
                let heard = neighbors.neighbors().map(\.neighbor)
                if heard != heardNeighbors {
                    heardNeighbors = heard
                    perform(session.handle(.neighborsChanged(at: now)))
                }
            }
            perform(session.handle(.tick(at: now)))
            if metrics.isEnabled, now >= nextMetrics {
                refreshMetrics()
                nextMetrics = now + 1
            }
        }
        // An apply under way finishes (the host is never left half way by a stop); its result is not sent.
        worker.stop()
        for socket in subscribers + dealers { socket.close() }
    }

    /// The last frame of each message waiting (at most 1000 at a time), for the session to judge.
    func drain(_ socket: ZMQSocket, frames minimum: Int) -> [[UInt8]] {
        var payloads: [[UInt8]] = []
        for _ in 0..<1000 {
            guard let message = try? socket.receive(wait: false) else { break }
            guard let payload = message.frames.last, message.frames.count >= minimum else { continue }
            payloads.append(payload)
        }
        return payloads
    }

    func finished(_ result: HostWorker.Result) {
        let now = monotonicSeconds()
        switch result {
        case .applied(let job, let report, let seconds, let daemonDown):
            recordApply(trigger: job.trigger.rawValue, seconds: seconds, ok: report.isComplete, drift: !report.drift.isEmpty)
            perform(session.handle(.applied(job, report, seconds: seconds, daemonDown: daemonDown, at: now)))
        case .inventory(let facts, let drift, let dhcpdState, let iptablesRules):
            sendInventory(facts, drift: drift, dhcpdState: dhcpdState, iptablesRules: iptablesRules)
        case .checked(let daemonDown, let learned):
            // SYSTEM mode: an address learned is reported at once (the operator is waiting to reach the VM).
            let changed = learned != reportedLearned
            reportedLearned = learned
            perform(session.handle(.hostChecked(daemonDown: daemonDown, learnedChanged: changed, at: now)))
        case .diagnosed(let command, let diagnosis):
            sendDiagnosis(command, diagnosis)
        }
    }

    func perform(_ actions: [AgentSession.Action]) {
        for action in actions {
            switch action {
            case .register(let appliedRevision): register(appliedRevision: appliedRevision)
            case .heartbeat(let sequence, let appliedRevision, let applying):
                var heartbeat = Vnet_V1_AgentHeartbeat()
                heartbeat.nodeID = options.nodeID
                heartbeat.appliedRevision = appliedRevision
                heartbeat.applyingRevision = applying
                heartbeat.sequence = sequence
                send(.agentHeartbeat(heartbeat))
            case .requestSnapshot:
                var request = Vnet_V1_SnapshotRequest()
                request.nodeID = options.nodeID
                send(.snapshotRequest(request))
            case .apply(let job): worker.submit(.apply(job))
            case .record(let record):
                if let data = try? JSONEncoder().encode(record) { writeAtomically(data, to: recordPath) }
            case .acknowledge(let revision, let operations, let seconds, let failures):
                var result = Vnet_V1_ApplyResult()
                result.nodeID = options.nodeID
                result.revision = revision
                result.ok = failures.isEmpty
                result.errors = failures.sorted().map(\.description)
                result.failures = failures.sorted().map(\.wire)
                result.operations = UInt32(operations)
                result.durationUs = UInt64(seconds * 1e6)
                send(.applyResult(result))
            case .sendInventory(let drift): worker.submit(.inventory(drift: drift))
            case .checkHost: worker.submit(.checkHost)
            case .startProbe(let command): startProbe(command)
            case .sendProbeReport(let report): send(.probeReport(report))
            case .diagnose(let command): worker.submit(.diagnose(command, held: session.heldState))
            case .log(let message, let level, let revision):
                log(message, revision: revision, level: level == .info ? .info : level == .warning ? .warning : .error)
            }
        }
    }

    // MARK: sending

    /// To the coordinator followed; nothing while none is (the session registers when one is heard).
    func send(_ body: Vnet_V1_Envelope.OneOf_Body) {
        guard let target = session.following, target < dealers.count else { return }
        try? dealers[target].send([codec.encode(body)], wait: false)
    }

    func register(appliedRevision: UInt64) {
        var message = Vnet_V1_Register()
        message.nodeID = options.nodeID
        message.interface = options.interface
        message.bridge = options.bridge
        message.agentVersion = "vnet-agent 0.1"
        message.appliedRevision = appliedRevision
        message.mac = interfaceMAC(options.interface)?.value ?? 0
        if let mode = options.mode { message.mode = mode.wire }
        message.role = options.role.wire
        send(.register(message))
    }

    func sendInventory(_ facts: HostInventory, drift: [String], dhcpdState: String, iptablesRules: Int) {
        var inventory = Vnet_V1_Inventory()
        inventory.nodeID = options.nodeID
        inventory.appliedRevision = session.applied?.revision ?? 0
        inventory.drift = drift
        inventory.failures = session.failures.sorted().map(\.wire)
        inventory.links = facts.links.map(\.wire)
        inventory.addresses = facts.addresses
        inventory.neighbors = (options.neighbors?.neighbors() ?? []).map {
            $0.neighbor.wire(interface: $0.interface, ageMilliseconds: UInt32(clamping: Int($0.age * 1000)))
        }
        inventory.dhcpdState = dhcpdState
        inventory.iptablesRules = UInt32(clamping: iptablesRules)
        inventory.learned = reportedLearned.map { learned in
            var wire = Vnet_V1_LearnedAddress()
            wire.instanceID = learned.instance.description
            wire.mac = learned.mac.value
            wire.address = learned.address.value
            return wire
        }
        send(.inventory(inventory))
    }

    /// A VLAN verification (validated by the session): probe on a thread of its own; the loop sends the report
    /// when it is done.
    func startProbe(_ command: Vnet_V1_ProbeCommand) {
        guard let prober = options.prober, let method = VLANProbeMethod(wire: command.method) else { return }
        var blank = Vnet_V1_ProbeReport()
        blank.probeID = command.probeID
        blank.nodeID = options.nodeID
        let peers = zip(command.peers, command.peerMacs).map { (name: $0, mac: MACAddress($1)) }
        let outbox = probeOutbox
        let listen = Double(command.listenMs) / 1000
        var request = VLANProbeRequest(method: method, interface: options.interface, name: options.nodeID, peers: peers,
                                       vlans: command.vlans.map(Int.init), count: Int(command.count),
                                       duration: Double(command.timeoutMs - command.listenMs) / 1000, listenFirst: listen,
                                       mtu: command.mtu, expectedMTU: command.expectedMtu == 0 ? nil : Int(command.expectedMtu),
                                       dhcp: command.dhcp)
        request.hub = command.hub.isEmpty ? nil : command.hub
        let asked = request
        blank.interface = options.interface
        let report = blank
        Thread.detachNewThread {
            var report = report
            do {
                let outcome = try prober.probe(asked)
                report.results = outcome.observations.map(\.wire)
                report.interfaceMtu = UInt32(outcome.interfaceMTU ?? 0)
                report.dhcpServers = outcome.dhcpServers.map(\.wire)
            } catch {
                report.error = "\(error)"
            }
            outbox.put(report)
        }
    }

    /// Every line names the node; lines about a revision carry it too (`revision:`).
    func log(_ message: String, revision: UInt64? = nil, level: Logger.Level = .info) {
        logger.log(level: level, "\(message)", metadata: revision.map { ["revision": "\($0)"] })
    }
}
