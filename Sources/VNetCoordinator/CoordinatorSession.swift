import VNetBus
import VNetCore
import VNetProto

/// The coordinator's side of the agents' protocol as a value: a message from an agent (with who sent it and
/// its routing frames) or a tick of the clock in; replies, snapshots, registrations for the next commit,
/// answers to operations and log lines out. It owns no socket and reads no clock (CoordinatorSessionTests feed
/// it made-up times); `Coordinator` carries its actions out, and keeps the allocations, the store and the
/// control batch.
///
/// What lives here (README "Design: the coordinator's events"): admission (a key speaks only for its node; a
/// host of another mode or role is refused, logged once per reason), liveness (UP, SUSPECT, DOWN from heartbeat
/// ages), heartbeat replies naming each host's desired revision, snapshot serving, what each host reported
/// (applied and applying revisions, failures, inventories), and the operation rounds (verify-vlan, diagnose):
/// their reports and their deadlines.
struct CoordinatorSession: Sendable {
    struct Settings: Sendable {
        var epoch: UInt64
        var mode: NetworkMode
        var frontend: String
        /// CURVE on: a message's key (ZMQ User-Id) must be the node it claims to be.
        var authenticated: Bool
        var heartbeatInterval: Double
        var suspectAfter = 2.0
        var downAfter = 3.0

        init(epoch: UInt64, mode: NetworkMode, frontend: String, authenticated: Bool, heartbeatInterval: Double) {
            self.epoch = epoch; self.mode = mode; self.frontend = frontend; self.authenticated = authenticated
            self.heartbeatInterval = heartbeatInterval
        }
    }

    enum Level: Sendable, Equatable { case info, notice, warning, error }

    enum Action: Sendable {
        /// A message to one agent on the sync socket.
        case reply(prefix: [[UInt8]], Vnet_V1_Envelope.OneOf_Body)
        /// That host's desired state, framed by the driver from its cached serialization.
        case sendSnapshot(prefix: [[UInt8]], host: String)
        /// An accepted registration: taken into the next commit batch (it may add the node).
        case register(prefix: [[UInt8]], Vnet_V1_Register)
        /// A finished verification's answer, on the control socket.
        case answer(prefix: [[UInt8]], Vnet_V1_ControlReply)
        /// A finished diagnosis: the driver adds the coordinator's own files and answers.
        case finishDiagnosis(DiagnosisRun)
        /// A background check (a bring-up check, a watch round) ended or its time is up: the driver judges it.
        case finishBackground(VLANVerificationRun)
        case count(String, labels: [String: String])
        case gauge(String, labels: [String: String], Double)
        case log(Level, String, metadata: [String: String])
    }

    enum Event: Sendable {
        /// `user`: the sender's key (CURVE), `peer`: its address.
        case received(Vnet_V1_Envelope.OneOf_Body, prefix: [[UInt8]], user: String?, peer: String?, at: Double)
        /// `hosts`: every host the cluster knows, for liveness transitions.
        case tick(at: Double, hosts: [String])
    }

    let settings: Settings
    private(set) var liveness: Liveness
    /// The desired revision of each host and the cluster's revision, as last committed.
    private(set) var desiredRevisions: [String: UInt64] = [:]
    private(set) var clusterRevision: UInt64 = 0
    private(set) var applied: [String: UInt64] = [:]
    /// What each host said it was applying at its last heartbeat (0: nothing): a long apply is visible as
    /// such, not as silence.
    private(set) var applying: [String: UInt64] = [:]
    private(set) var peerAddresses: [String: String] = [:]
    /// What each node's inventories said (kept in memory: agents send one at least every 10 s, so a restarted
    /// coordinator has them again soon).
    var reports: [String: NodeReport] = [:]
    /// How to reach each agent directly on the sync socket (its routing frames), and its interface's MAC.
    private(set) var routes: [String: [[UInt8]]] = [:]
    private(set) var interfaceMACs: [String: UInt64] = [:]
    var verifications: [String: VLANVerificationRun] = [:]
    var diagnoses: [String: DiagnosisRun] = [:]
    /// The reason each host's registration was last refused for (logged once per reason).
    var lastRegistrationRefusal: [String: String] = [:]
    private(set) var refusals = RefusalCounters()

    init(settings: Settings) {
        self.settings = settings
        liveness = Liveness(interval: settings.heartbeatInterval, suspectAfter: settings.suspectAfter, downAfter: settings.downAfter)
    }

    /// After a commit (and at start): what each host should have now.
    mutating func committed(desired: [String: UInt64], cluster: UInt64) {
        desiredRevisions = desired
        clusterRevision = cluster
    }

    mutating func refused(_ refusal: EnvelopeCodec.Refusal) { refusals.count(refusal) }
    mutating func refusedUnauthorized() { refusals.countUnauthorized() }

    /// Whether `host` is UP with a route and a MAC: it can take part in a verification.
    func reachable(_ host: String, at now: Double) -> Bool {
        liveness.state(of: host, at: now) == .up && routes[host] != nil && interfaceMACs[host] != nil
    }

    mutating func handle(_ event: Event) -> [Action] {
        var out: [Action] = []
        switch event {
        case .received(let body, let prefix, let user, let peer, let now):
            receive(body, prefix: prefix, user: user, peer: peer, now, &out)
        case .tick(let now, let hosts):
            for (node, state) in liveness.transitions(at: now, nodes: hosts) {
                out.append(.log(.notice, "node \(node) is \(state.rawValue)", metadata: ["node": node]))
            }
            for (id, run) in verifications where run.complete || now > run.deadline {
                let late = run.participants.filter { run.reports[$0] == nil }
                if !late.isEmpty { out.append(.log(.warning, "VLAN verification \(id): no report in time from \(late.joined(separator: ", "))", metadata: [:])) }
                out.append(run.background ? .finishBackground(run) : .answer(prefix: run.replyPrefix, run.reply()))
                verifications[id] = nil
            }
            for (id, run) in diagnoses where run.complete || now > run.deadline {
                out.append(.finishDiagnosis(run))
                diagnoses[id] = nil
            }
        }
        return out
    }

    /// A verification the driver made (it knows the allocations): every participant is told to probe.
    mutating func start(_ run: VLANVerificationRun, _ command: Vnet_V1_ProbeCommand) -> [Action] {
        verifications[run.id] = run
        return run.participants.compactMap { host in routes[host].map { .reply(prefix: $0, .probeCommand(command)) } }
    }

    /// A diagnosis: every host UP or SUSPECT with a route is asked for its bundle.
    mutating func startDiagnosis(id: String, prefix: [[UInt8]], requestID: String, hosts: [String], timeout: Double, at now: Double) -> (asked: Int, actions: [Action]) {
        let asked = Set(hosts.filter { [.up, .suspect].contains(liveness.state(of: $0, at: now)) && routes[$0] != nil })
        var command = Vnet_V1_DiagnoseCommand()
        command.diagnoseID = id
        diagnoses[id] = DiagnosisRun(id: id, replyPrefix: prefix, requestID: requestID, hosts: hosts, asked: asked, deadline: now + timeout)
        return (asked.count, asked.sorted().map { .reply(prefix: routes[$0]!, .diagnoseCommand(command)) })
    }

    /// In CURVE mode the key decides who a message is from; a claim to be another node is refused.
    mutating func authorized(_ claimed: String, user: String?, _ out: inout [Action]) -> Bool {
        guard settings.authenticated else { return true }
        if user == claimed { return true }
        refusals.countUnauthorized()
        out.append(.log(.warning, "refused a message claiming to be node '\(claimed)' from key of '\(user ?? "?")'", metadata: [:]))
        return false
    }

    mutating func receive(_ body: Vnet_V1_Envelope.OneOf_Body, prefix: [[UInt8]], user: String?, peer: String?, _ now: Double, _ out: inout [Action]) {
        switch body {
        case .register(let register):
            guard authorized(register.nodeID, user: user, &out) else { return }
            if let mismatch = registrationMismatch(register) {
                // Refused before it counts as heard: a host that would apply a wrong topology is not UP.
                if lastRegistrationRefusal[register.nodeID] != mismatch {
                    out.append(.log(.error, "refused the registration of \(register.nodeID): \(mismatch)", metadata: ["node": register.nodeID]))
                    lastRegistrationRefusal[register.nodeID] = mismatch
                }
                var reply = Vnet_V1_RegisterReply()
                reply.epoch = settings.epoch
                reply.accepted = false
                reply.error = mismatch
                return out.append(.reply(prefix: prefix, .registerReply(reply)))
            }
            lastRegistrationRefusal[register.nodeID] = nil
            if let peer { peerAddresses[register.nodeID] = peer }
            liveness.heard(register.nodeID, at: now)
            routes[register.nodeID] = prefix
            if register.mac != 0 { interfaceMACs[register.nodeID] = register.mac }
            out.append(.register(prefix: prefix, register))
        case .snapshotRequest(let request):
            guard authorized(request.nodeID, user: user, &out) else { return }
            if desiredRevisions[request.nodeID] != nil {
                out.append(.sendSnapshot(prefix: prefix, host: request.nodeID))
            } else {
                var reply = Vnet_V1_RegisterReply()
                reply.accepted = false
                reply.error = "node '\(request.nodeID)' is not registered"
                out.append(.reply(prefix: prefix, .registerReply(reply)))
            }
        case .agentHeartbeat(let heartbeat):
            guard authorized(heartbeat.nodeID, user: user, &out) else { return }
            liveness.heard(heartbeat.nodeID, at: now)
            applied[heartbeat.nodeID] = heartbeat.appliedRevision
            applying[heartbeat.nodeID] = heartbeat.applyingRevision
            if let peer { peerAddresses[heartbeat.nodeID] = peer }
            var reply = Vnet_V1_CoordinatorHeartbeat()
            reply.epoch = settings.epoch
            reply.clusterRevision = clusterRevision
            reply.desiredRevision = desiredRevisions[heartbeat.nodeID] ?? 0
            out.append(.reply(prefix: prefix, .coordinatorHeartbeat(reply)))
        case .inventory(let inventory):
            guard authorized(inventory.nodeID, user: user, &out) else { return }
            applied[inventory.nodeID] = inventory.appliedRevision
            reports[inventory.nodeID, default: NodeReport()].update(from: inventory)
            if !inventory.drift.isEmpty {
                out.append(.count("vnet_drift_repairs_total", labels: ["node": inventory.nodeID]))
                out.append(.log(.warning, "node \(inventory.nodeID) revision \(inventory.appliedRevision): drift repaired: \(inventory.drift.joined(separator: "; "))",
                                metadata: ["node": inventory.nodeID, "revision": "\(inventory.appliedRevision)"]))
            }
        case .diagnoseReport(let report):
            guard authorized(report.nodeID, user: user, &out) else { return }
            // A report for a round this coordinator did not start (a restart in between) is dropped.
            if var run = diagnoses[report.diagnoseID], run.asked.contains(report.nodeID) {
                run.reports[report.nodeID] = report
                diagnoses[report.diagnoseID] = run
            }
        case .probeReport(let report):
            guard authorized(report.nodeID, user: user, &out) else { return }
            if var run = verifications[report.probeID], run.participants.contains(report.nodeID) {
                run.reports[report.nodeID] = report
                verifications[report.probeID] = run
            }
        case .applyResult(let result):
            guard authorized(result.nodeID, user: user, &out) else { return }
            // A state applied in part is applied: its failures say what of it is not on the host.
            applied[result.nodeID] = result.revision
            out.append(.gauge("vnet_node_apply_seconds", labels: ["node": result.nodeID], Double(result.durationUs) / 1e6))
            let metadata = ["node": result.nodeID, "revision": "\(result.revision)"]
            let changed = reports[result.nodeID, default: NodeReport()].update(revision: result.revision, failures: result.failures)
            if !result.ok {
                out.append(.count("vnet_apply_failures_total", labels: ["node": result.nodeID]))
                if changed {
                    out.append(.log(.error, "node \(result.nodeID) revision \(result.revision): applied except: \(result.errors.joined(separator: "; "))", metadata: metadata))
                }
            } else if changed {
                out.append(.log(.notice, "node \(result.nodeID) revision \(result.revision): every object applied now", metadata: metadata))
            }
        default:
            refusals.count(.malformed)  // a kind agents do not send
        }
    }

    /// Why a host's registration must be refused for what it says of itself, naming both sides; nil when it
    /// fits. An agent that says nothing of its mode or role (older than this field) is taken at its word.
    func registrationMismatch(_ register: Vnet_V1_Register) -> String? {
        if let mode = NetworkMode(wire: register.mode), mode != settings.mode {
            return "\(register.nodeID)'s eucalyptus.conf has VNET_MODE=\(mode.rawValue), this coordinator's VNET_MODE=\(settings.mode.rawValue): it would build the wrong network; give both the same mode"
        }
        let isFrontend = register.nodeID == settings.frontend
        switch HostRole(wire: register.role) {
        case .frontend? where !isFrontend:
            return "\(register.nodeID)'s agent runs with --role frontend, but this cluster's front end is \(settings.frontend) (the coordinator's --frontend)"
        case .node? where isFrontend:
            return "\(register.nodeID) is this cluster's front end (the coordinator's --frontend), but its agent runs with --role node: start it with --role frontend"
        default:
            return nil
        }
    }
}
