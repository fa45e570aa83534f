import Foundation
import SwiftProtobuf
import VNetBus
import VNetCore
import VNetProto
import ZMQ
import CZMQ
import Logging

/// How an agent runs; built by `vnet-agent` from its flags and eucalyptus.conf.
public struct AgentOptions: Sendable {
    public var nodeID: String
    public var clusterID = "vnet"
    public var coordinator: BusEndpoints
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
    /// Whether the agent keeps metrics (it is served them with `--metrics`).
    public var metrics = false
    /// The host's VNET_MODE and the role the agent was started with, said at registration: a coordinator of
    /// another mode, or one whose front end this host is not (or is), refuses the registration.
    public var mode: NetworkMode?
    public var role: HostRole = .node

    public init(nodeID: String, coordinator: BusEndpoints, stateDirectory: String) {
        self.nodeID = nodeID
        self.coordinator = coordinator
        self.stateDirectory = stateDirectory
    }
}

/// What the agent remembers across restarts: the revision it applied and a digest of that state, so that a
/// restarted agent does not apply again what the host already has.
public struct AppliedRecord: Codable, Equatable, Sendable {
    public var revision: UInt64
    public var digest: UInt64

    static func path(in stateDirectory: String) -> String { "\(stateDirectory)/applied.json" }

    /// The record kept in an agent's state directory, if there is one (`vnet-agent diagnose` reads it too).
    public static func load(from stateDirectory: String) -> AppliedRecord? {
        FileManager.default.contents(atPath: path(in: stateDirectory)).flatMap { try? JSONDecoder().decode(AppliedRecord.self, from: $0) }
    }
}

/// The node agent: subscribes to its host's desired state, applies it through a `HostBackend`, acknowledges
/// the revision, heartbeats and reports inventory.
///
/// It never tears anything down because the coordinator is silent or restarted: only a desired state that
/// says so changes the host. One thread, one poll loop over SUB (updates, coordinator heartbeats) and DEALER
/// (registration, snapshots, heartbeats and reports).
public final class Agent {
    public let options: AgentOptions
    let backend: HostBackend
    let codec: EnvelopeCodec
    let context = ZMQContext()
    let subscriber: ZMQSocket
    let dealer: ZMQSocket
    public let stopFlag = StopFlag()

    var applied: AppliedRecord?
    /// The desired state held, kept to re-apply it periodically (drift repair).
    var heldState: HostNetworkState?
    var held: UInt64 { applied?.revision ?? 0 }
    var registered = false
    var epoch: UInt64 = 0
    var lastContact = monotonicSeconds()
    var coordinatorLost = false
    var lastSnapshotRequest = -1e9
    var heartbeatSequence: UInt64 = 0
    var lastRefusal = ""
    /// SYSTEM mode: the instance addresses last reported in an inventory.
    var reportedLearned: [LearnedAddress] = []
    let probeOutbox = ProbeOutbox()
    var probing = false
    var probeStarted = 0.0
    public private(set) var refusals = RefusalCounters()
    let logger: Logger
    /// Served by `MetricsServer` when the daemon is given `--metrics`.
    public let metrics: MetricsRegistry
    /// What the coordinator last said this host should have (its heartbeat replies).
    var desiredRevision: UInt64 = 0
    /// What the held state still lacks on the host (the last apply's report), retried with back-off.
    var failures: [ApplyReport.Failure] = []
    var retryAt: Double?
    var retryDelay = 0.0
    /// What was last logged of failures and notes: a cause is logged when it changes, not on every retry.
    var loggedFailures: [String] = []
    var loggedNotes: [String] = []

    var recordPath: String { AppliedRecord.path(in: options.stateDirectory) }

    public init(options: AgentOptions, backend: HostBackend) throws {
        self.options = options
        self.backend = backend
        codec = EnvelopeCodec(clusterID: options.clusterID)
        logger = Log.logger("agent", metadata: ["node": "\(options.nodeID)"])
        metrics = MetricsRegistry(enabled: options.metrics)
        Self.declareMetrics(metrics)
        if let problem = NameRules.hostNameProblem(options.nodeID) { throw BusError("--node-id: \(problem)") }
        try FileManager.default.createDirectory(atPath: options.stateDirectory, withIntermediateDirectories: true)
        applied = AppliedRecord.load(from: options.stateDirectory)
        let security: SocketSecurity
        if let keys = options.keys, let server = options.coordinatorPublicKey {
            security = .curveClient(keys: keys, serverPublicKey: server)
        } else {
            security = .insecure
        }
        subscriber = try ZMQSocket(context, .sub)
        dealer = try ZMQSocket(context, .dealer)
        try security.apply(to: subscriber)
        try security.apply(to: dealer)
        try subscriber.set(ZMQ_RCVHWM, 100_000)
        for socket in [subscriber, dealer] {
            try socket.set(ZMQ_HEARTBEAT_IVL, Int32(options.heartbeatInterval * 1000))
            try socket.set(ZMQ_HEARTBEAT_TIMEOUT, Int32(options.heartbeatInterval * 3000))
            try socket.set(ZMQ_RECONNECT_IVL, 100)
            try socket.set(ZMQ_RECONNECT_IVL_MAX, 2000)
        }
        try subscriber.subscribe(Array("n/\(options.nodeID)/".utf8))
        try subscriber.subscribe(Array("hb/".utf8))
        try subscriber.connect(options.coordinator.publish)
        try dealer.connect(options.coordinator.sync)
    }

    public func stop() { stopFlag.stop() }

    public func run() {
        log("starting; holding revision \(held)", revision: held)
        var nextHeartbeat = 0.0
        var nextInventory = monotonicSeconds() + 10
        var nextReconcile = monotonicSeconds() + options.reconcileInterval
        var nextDaemonRepair = 0.0
        var nextLearning = 0.0
        var nextMetrics = 0.0
        register()
        while !stopFlag.isStopped {
            let ready = (try? ZMQPoller.readable([subscriber, dealer], timeoutMilliseconds: 20)) ?? [false, false]
            if ready[0] { drain(subscriber, fromPublisher: true) }
            if ready[1] { drain(dealer, fromPublisher: false) }
            let now = monotonicSeconds()
            if now >= nextHeartbeat {
                nextHeartbeat = now + options.heartbeatInterval
                if registered { sendHeartbeat() } else { register() }
                // A dead dhcpd means instances that cannot renew: repaired now, not at the next reconcile. One that
                // will not start is then the apply's `dhcpd` failure: retried with back-off, logged once per cause.
                if options.reconcileInterval > 0, heldState != nil, now >= nextDaemonRepair, backend.daemonDown {
                    reconcile()
                    nextReconcile = now + options.reconcileInterval
                    nextDaemonRepair = backend.daemonDown ? nextReconcile : now
                }
                if !coordinatorLost, now - lastContact > 3 * options.heartbeatInterval {
                    coordinatorLost = true
                    registered = false
                    log("coordinator silent for \(Int(now - lastContact)) s; keeping the host as it is and reconnecting", revision: held, level: .warning)
                }
            }
            if now >= nextInventory {
                sendInventory(drift: [])
                nextInventory = now + 10
            }
            for report in probeOutbox.take() {
                probing = false
                log("VLAN verification \(report.probeID): reporting \(report.results.count) results after \(String(format: "%.1f", monotonicSeconds() - probeStarted)) s"
                    + (report.error.isEmpty ? "" : "; error: \(report.error)"))
                send(.probeReport(report))
            }
            // SYSTEM mode: an address learned is reported at once (the operator is waiting to reach the VM).
            if now >= nextLearning {
                nextLearning = now + 0.2
                let learned = backend.learnedAddresses()
                if learned != reportedLearned {
                    reportedLearned = learned
                    sendInventory(drift: [])
                }
            }
            if metrics.isEnabled, now >= nextMetrics {
                refreshMetrics()
                nextMetrics = now + 1
            }
            if options.reconcileInterval > 0, now >= nextReconcile {
                reconcile()
                nextReconcile = now + options.reconcileInterval
            } else if let retryAt, now >= retryAt {
                reconcile(trigger: "retry")
            }
        }
        subscriber.close()
        dealer.close()
    }

    func drain(_ socket: ZMQSocket, fromPublisher: Bool) {
        var payloads: [[UInt8]] = []
        for _ in 0..<1000 {
            guard let message = try? socket.receive(wait: false) else { break }
            guard let payload = message.frames.last, message.frames.count >= (fromPublisher ? 2 : 1) else { continue }
            payloads.append(payload)
        }
        // Updates on PUB: the header alone says whether this is news; only news is decoded in full, and of a
        // burst only the last of each chain (see SyncDecision.coalesce).
        var headers: [IntentFrame.Header?] = []
        var chosen: Int?
        if fromPublisher {
            headers = payloads.map { IntentFrame.peek($0, clusterID: options.clusterID) }
            let decision = SyncDecision.coalesce(headers.map { header in
                header.flatMap { $0.nodeID == options.nodeID ? ($0.revision, $0.previousRevision) : nil }
            }, held: held)
            chosen = decision.apply
            if let gap = decision.gap {
                requestSnapshot(reason: "missed an update (got \(gap.revision) after \(gap.previous), holding \(held))")
            }
        }
        for (index, payload) in payloads.enumerated() {
            if fromPublisher, let header = headers[index] {
                guard header.nodeID == options.nodeID else { refusals.countUnauthorized(); continue }
                contact(epoch: header.epoch)
                guard index == chosen else { continue }  // not news, or superseded later in this burst
            }
            switch codec.decode(payload) {
            case .failure(let refusal):
                refusals.count(refusal)
            case .success(let body):
                handle(body, fromPublisher: fromPublisher)
            }
        }
    }

    func handle(_ body: Vnet_V1_Envelope.OneOf_Body, fromPublisher: Bool) {
        switch body {
        case .coordinatorHeartbeat(let heartbeat):
            contact(epoch: heartbeat.epoch)
            if !fromPublisher { desiredRevision = heartbeat.desiredRevision }
            if !fromPublisher, SyncDecision.forHeartbeat(desired: heartbeat.desiredRevision, held: held) == .requestSnapshot {
                requestSnapshot(reason: "coordinator wants revision \(heartbeat.desiredRevision), holding \(held)")
            }
        case .registerReply(let reply):
            contact(epoch: reply.epoch)
            if reply.accepted {
                if !registered { log("registered (coordinator epoch \(reply.epoch))") }
                registered = true
                lastRefusal = ""
                requestSnapshot(reason: "registration", force: true)
            } else {
                registered = false
                // It is asked again every interval; say so once per reason, not once a second.
                if reply.error != lastRefusal { log("registration refused: \(reply.error)") }
                lastRefusal = reply.error
            }
        case .probeCommand(let command) where !fromPublisher:
            startProbe(command)
        case .diagnoseCommand(let command) where !fromPublisher:
            sendDiagnosis(command)
        case .nodeState(let state):
            guard state.nodeID == options.nodeID else { refusals.countUnauthorized(); return }
            contact(epoch: state.epoch)
            // Refused at registration (another mode, the wrong role): what is published for this name is not
            // for a host configured like this one; nothing is applied until a registration is accepted.
            guard lastRefusal.isEmpty else { return }
            // From PUB it was found to be the next update (peek above); from a snapshot it is applied unless
            // the host already has exactly this.
            apply(state)
        default:
            refusals.count(.malformed)
        }
    }

    func contact(epoch newEpoch: UInt64) {
        lastContact = monotonicSeconds()
        if coordinatorLost {
            coordinatorLost = false
            log("coordinator is back")
        }
        if newEpoch != 0, epoch != newEpoch {
            if epoch != 0 {
                log("coordinator restarted (epoch \(newEpoch)); re-registering and resynchronising")
                registered = false
                register()
            }
            epoch = newEpoch
        }
    }

    func apply(_ message: Vnet_V1_NodeState) {
        desiredRevision = message.revision
        let digest = message.state.digest
        if let applied, applied.digest == digest {
            if heldState == nil { heldState = try? HostNetworkState(wire: message.state) }
            // The host already has this state: take the revision, apply nothing.
            if applied.revision != message.revision { record(AppliedRecord(revision: message.revision, digest: digest)) }
            acknowledge(message.revision, operations: 0, started: monotonicSeconds(), failures: [])
            return
        }
        let started = monotonicSeconds()
        let state: HostNetworkState
        do { state = try HostNetworkState(wire: message.state) } catch {
            refusals.count(.malformed)
            log("refused a desired state: \(error)", revision: message.revision, level: .error)
            acknowledge(message.revision, operations: 0, started: started, failures: [.init(.refused, object: "desired state", error: "\(error)")])
            return
        }
        let report = applyReporting(state, revision: message.revision)
        heldState = state
        // A state applied in part is held (its revision is what the host is meant to have, and what is retried),
        // but not recorded as on the host: a restarted agent applies it again.
        record(AppliedRecord(revision: message.revision, digest: report.isComplete ? digest : 0))
        recordApply(trigger: "update", seconds: monotonicSeconds() - started, ok: report.isComplete, drift: !report.drift.isEmpty)
        log("applied \(report.operations) operations" + (report.isComplete ? "" : "; \(report.failures.count) objects not as desired"), revision: message.revision)
        settle(report, revision: message.revision)
        acknowledge(message.revision, operations: report.operations, started: started, failures: report.failures)
        sendInventory(drift: report.drift)
    }

    /// The backend's apply as a report: a whole failure (nothing changed) is the report of one failed object,
    /// the host.
    func applyReporting(_ state: HostNetworkState, revision: UInt64) -> ApplyReport {
        do { return try backend.apply(state, revision: revision) } catch {
            return ApplyReport(failures: [.init(.failed, object: "host", error: "\(error)")])
        }
    }

    /// Logs what changed in a report's failures and notes, and schedules the retry of what failed: 0.5 s, then
    /// doubling to 8 s, until the host has all of it or another state arrives.
    func settle(_ report: ApplyReport, revision: UInt64) {
        failures = report.failures
        let lines = report.failureLines
        if lines != loggedFailures {
            if lines.isEmpty { log("every object of the held state is on the host now", revision: revision) }
            for line in lines { log("not applied: \(line)", revision: revision, level: .error) }
            loggedFailures = lines
        }
        if report.notes != loggedNotes {
            for note in report.notes { log("\(note)", revision: revision) }
            loggedNotes = report.notes
        }
        if report.isComplete {
            retryAt = nil
            retryDelay = 0
        } else {
            retryDelay = min(max(retryDelay * 2, 0.5), 8)
            retryAt = monotonicSeconds() + retryDelay
        }
    }

    /// Re-applies the held state: nothing happens if the host is as it should be; what was changed by hand is
    /// put back and reported; what failed before is tried again (`trigger` "retry").
    func reconcile(trigger: String = "reconcile") {
        guard let heldState else { retryAt = nil; return }
        let started = monotonicSeconds()
        let before = failures
        let report = applyReporting(heldState, revision: held)
        recordApply(trigger: trigger, seconds: monotonicSeconds() - started, ok: report.isComplete, drift: !report.drift.isEmpty)
        if !report.drift.isEmpty {
            log("repaired drift with \(report.operations) operations: \(report.drift.joined(separator: "; "))", revision: held, level: .warning)
        }
        settle(report, revision: held)
        if report.failures != before {
            // The coordinator (and `--wait`) hear of a failure that appeared, changed or went away.
            if report.isComplete, let applied, applied.revision == held {
                record(AppliedRecord(revision: held, digest: heldState.wire.digest))
            }
            acknowledge(held, operations: report.operations, started: started, failures: report.failures)
        }
        if report.operations > 0 || report.failures != before { sendInventory(drift: report.drift) }
    }

    func record(_ record: AppliedRecord) {
        applied = record
        if let data = try? JSONEncoder().encode(record) { writeAtomically(data, to: recordPath) }
    }

    // MARK: sending

    func send(_ body: Vnet_V1_Envelope.OneOf_Body) {
        try? dealer.send([codec.encode(body)], wait: false)
    }

    func register() {
        var message = Vnet_V1_Register()
        message.nodeID = options.nodeID
        message.interface = options.interface
        message.bridge = options.bridge
        message.agentVersion = "vnet-agent 0.1"
        message.appliedRevision = held
        message.mac = interfaceMAC(options.interface)?.value ?? 0
        if let mode = options.mode { message.mode = mode.wire }
        message.role = options.role.wire
        send(.register(message))
    }

    func requestSnapshot(reason: String, force: Bool = false) {
        let now = monotonicSeconds()
        guard force || now - lastSnapshotRequest > options.heartbeatInterval else { return }
        lastSnapshotRequest = now
        var request = Vnet_V1_SnapshotRequest()
        request.nodeID = options.nodeID
        send(.snapshotRequest(request))
        if !force { log("asking for a snapshot: \(reason)") }
    }

    func sendHeartbeat() {
        heartbeatSequence += 1
        var heartbeat = Vnet_V1_AgentHeartbeat()
        heartbeat.nodeID = options.nodeID
        heartbeat.appliedRevision = held
        heartbeat.sequence = heartbeatSequence
        send(.agentHeartbeat(heartbeat))
    }

    func acknowledge(_ revision: UInt64, operations: Int, started: Double, failures: [ApplyReport.Failure]) {
        var result = Vnet_V1_ApplyResult()
        result.nodeID = options.nodeID
        result.revision = revision
        result.ok = failures.isEmpty
        result.errors = failures.sorted().map(\.description)
        result.failures = failures.sorted().map(\.wire)
        result.operations = UInt32(operations)
        result.durationUs = UInt64((monotonicSeconds() - started) * 1e6)
        send(.applyResult(result))
    }

    func sendInventory(drift: [String]) {
        var inventory = Vnet_V1_Inventory()
        inventory.nodeID = options.nodeID
        inventory.appliedRevision = held
        let facts = backend.inventory()
        if let observed = facts.owned { inventory.observed = observed.wire }
        inventory.drift = drift
        inventory.failures = failures.sorted().map(\.wire)
        inventory.links = facts.links.map(\.wire)
        inventory.addresses = facts.addresses
        inventory.dhcpdState = backend.dhcpdState
        inventory.iptablesRules = UInt32(clamping: backend.iptablesRules)
        inventory.learned = reportedLearned.map { learned in
            var wire = Vnet_V1_LearnedAddress()
            wire.instanceID = learned.instance.description
            wire.mac = learned.mac.value
            wire.address = learned.address.value
            return wire
        }
        send(.inventory(inventory))
    }

    /// A VLAN verification: probe on a thread of its own; the loop sends the report when it is done.
    func startProbe(_ command: Vnet_V1_ProbeCommand) {
        var refusal = Vnet_V1_ProbeReport()
        refusal.probeID = command.probeID
        refusal.nodeID = options.nodeID
        guard let prober = options.prober else { refusal.error = "this agent cannot probe (no packet sockets)"; send(.probeReport(refusal)); return }
        guard !probing else { refusal.error = "a verification is already running on this host"; send(.probeReport(refusal)); return }
        guard command.peers.count == command.peerMacs.count, command.peers.count <= 4096,
              command.vlans.allSatisfy({ (2...4094).contains($0) }), (1...100).contains(command.count),
              (1...120_000).contains(command.timeoutMs), command.listenMs < command.timeoutMs,
              ["", "raw", "kernel"].contains(command.method) else {
            refusals.count(.malformed)
            refusal.error = "a malformed probe command"
            send(.probeReport(refusal))
            return
        }
        probing = true
        probeStarted = monotonicSeconds()
        let peers = zip(command.peers, command.peerMacs).map { (name: $0, mac: MACAddress($1)) }
        let interface = options.interface, name = options.nodeID, outbox = probeOutbox, method = command.method
        let vlans = command.vlans.map(Int.init), count = Int(command.count)
        let listen = Double(command.listenMs) / 1000, duration = Double(command.timeoutMs - command.listenMs) / 1000
        log("VLAN verification \(command.probeID): probing \(peers.count) peers on \(vlans.count) VIDs")
        let blank = refusal
        Thread.detachNewThread {
            var report = blank
            do {
                report.results = try prober.probe(method: method, interface: interface, name: name, peers: peers, vlans: vlans, count: count,
                                                  duration: duration, listenFirst: listen).map(\.wire)
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
