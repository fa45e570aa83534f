import VNetBus
import VNetCore
import VNetProto

/// The agent's side of the protocol as a value: an event in (bytes from a socket, a tick of the clock, an
/// apply that finished), actions out (send this, apply that, write the applied record, log). It owns no socket,
/// reads no clock and starts no thread, so every rule below is tested in process with made-up times
/// (AgentSessionTests); `Agent` only carries the actions out.
///
/// The rules (README "Design: the agent's states"):
/// - An update is applied only if it continues the history held (`previousRevision` = the revision held);
///   a gap, an epoch change or a heartbeat reply naming a newer revision asks for a snapshot.
/// - A snapshot older than the revision held is never applied: it was asked for before a newer update came.
/// - One apply at a time; states that arrive meanwhile wait in one slot, the newest replacing the one waiting
///   (each carries the host's whole state), so a burst costs one apply after the current one.
/// - Silence from the coordinator never changes the host: the agent keeps what it has and registers again.
/// - With several coordinators (a PostgreSQL store shared, one leading), the agent follows the one whose
///   heartbeat says it is active under the highest epoch heard, and never one of a lower epoch: a new leader
///   means registering with it and a snapshot, which the held digest turns into no apply when nothing changed.
///   Messages from any other coordinator are ignored, but for their heartbeats.
public struct AgentSession: Sendable {
    public enum Phase: String, Sendable, CaseIterable {
        /// Started, nothing said yet.
        case unregistered
        /// Registration sent (again every heartbeat interval until answered).
        case registering
        /// The coordinator refused this host (another mode, the wrong role): nothing it publishes is applied.
        case refused
        /// Registered; the snapshot asked for has not come.
        case syncing
        /// Registered and holding the coordinator's state (applied, being applied, or waiting in the slot).
        case active
        /// Nothing heard for three heartbeat intervals: the host is kept as it is; registering again.
        case coordinatorLost = "coordinator-lost"
    }

    /// Why the held state is applied.
    public enum Trigger: String, Sendable {
        /// A new desired state from the coordinator (an update or a snapshot).
        case update
        /// The periodic re-apply that repairs what was changed by hand.
        case reconcile
        /// What failed last time, tried again with back-off.
        case retry
        /// A daemon of the held state died (dhcpd): applied again at once.
        case repair
    }

    public struct ApplyJob: Sendable, Equatable {
        public var revision: UInt64
        public var state: HostNetworkState
        /// Of the state's wire form: what the applied record keeps.
        public var digest: UInt64
        public var trigger: Trigger
    }

    public struct Settings: Sendable {
        public var nodeID: String
        public var clusterID: String
        public var heartbeatInterval: Double
        /// 0: the held state is never re-applied, and a dead daemon is not started again.
        public var reconcileInterval: Double
        public var inventoryInterval = 10.0
        /// How often the host is looked at between applies: a dead daemon, addresses learned (SYSTEM).
        public var hostCheckInterval = 0.2
        /// Whether this agent has a prober (packet sockets) for VLAN verifications.
        public var canProbe: Bool
        /// How many coordinators the agent listens to (sources 0..<coordinators of `received`).
        public var coordinators = 1

        public init(nodeID: String, clusterID: String = "vnet", heartbeatInterval: Double = 1, reconcileInterval: Double = 10, canProbe: Bool = false) {
            self.nodeID = nodeID; self.clusterID = clusterID; self.heartbeatInterval = heartbeatInterval
            self.reconcileInterval = reconcileInterval; self.canProbe = canProbe
        }
    }

    public enum Level: Sendable, Equatable { case info, warning, error }

    public enum Action: Sendable, Equatable {
        case register(appliedRevision: UInt64)
        /// `applying`: the revision being applied as this is sent (0: none).
        case heartbeat(sequence: UInt64, appliedRevision: UInt64, applying: UInt64)
        case requestSnapshot
        case apply(ApplyJob)
        /// Write the applied record (what a restarted agent trusts the host to have).
        case record(AppliedRecord)
        case acknowledge(revision: UInt64, operations: Int, seconds: Double, failures: [ApplyReport.Failure])
        /// Look at the host and report it with these drift notes.
        case sendInventory(drift: [String])
        /// Look at the host between applies: is a daemon of the held state dead, were addresses learned.
        case checkHost
        case startProbe(Vnet_V1_ProbeCommand)
        case sendProbeReport(Vnet_V1_ProbeReport)
        case diagnose(Vnet_V1_DiagnoseCommand)
        case log(String, Level, revision: UInt64?)
    }

    public enum Event: Sendable {
        case tick(at: Double)
        /// The last frame of each message read from a socket in one go (PUB: updates and coordinator
        /// heartbeats; DEALER: replies, snapshots, commands).
        case received([[UInt8]], fromPublisher: Bool, source: Int = 0, at: Double)
        /// An apply asked for finished; `daemonDown`: a daemon of the state was still dead afterwards.
        case applied(ApplyJob, ApplyReport, seconds: Double, daemonDown: Bool, at: Double)
        /// What `checkHost` found.
        case hostChecked(daemonDown: Bool, learnedChanged: Bool, at: Double)
        case probeFinished(Vnet_V1_ProbeReport, at: Double)
        /// The switch port heard on the interface (LLDP) changed: the coordinator is told at once.
        case neighborsChanged(at: Double)
    }

    public let settings: Settings
    let codec: EnvelopeCodec
    public private(set) var phase = Phase.unregistered
    /// What the host has, as far as the agent knows (nil: nothing applied yet; digest 0: applied in part).
    public private(set) var applied: AppliedRecord?
    /// The revision of the newest desired state accepted: applied, being applied, or waiting. Updates are
    /// judged against it.
    public private(set) var held: UInt64
    public private(set) var heldState: HostNetworkState?
    var heldDigest: UInt64?
    public private(set) var inFlight: ApplyJob?
    /// The one slot: the newest state that came while another was being applied.
    public private(set) var waiting: ApplyJob?
    /// What the held state still lacks on the host (the last apply's report), retried with back-off.
    public private(set) var failures: [ApplyReport.Failure] = []
    /// What the coordinator last said this host should have (its heartbeat replies and states).
    public private(set) var desiredRevision: UInt64 = 0
    /// The epoch of the coordinator followed; the highest heard to lead, never lowered.
    public private(set) var epoch: UInt64 = 0
    /// The coordinator followed (an index into the agent's list); nil: none leads that this agent has heard.
    public private(set) var following: Int?
    /// Lower epochs said once each (a deposed coordinator still claiming to lead).
    var loggedLower: Set<UInt64> = []
    public private(set) var refusals = RefusalCounters()
    /// The VLAN verification running on this host, if any; a kernel-method one holds off re-applies, so that
    /// the check's devices and the held state are not changed under each other.
    public private(set) var probe: (id: String, kernel: Bool, started: Double)?
    var lastContact: Double
    var lastSnapshotRequest = -1e9
    var heartbeatSequence: UInt64 = 0
    var lastRefusal = ""
    var retryAt: Double?
    var retryDelay = 0.0
    var loggedFailures: [String] = []
    var loggedNotes: [String] = []
    var loggedStale: UInt64?
    var nextHeartbeat = 0.0
    var nextInventory: Double
    var nextReconcile: Double
    var nextDaemonRepair = 0.0
    var nextHostCheck = 0.0
    var hostCheckPending = false

    public init(settings: Settings, applied: AppliedRecord?, at now: Double) {
        self.settings = settings
        codec = EnvelopeCodec(clusterID: settings.clusterID)
        self.applied = applied
        held = applied?.revision ?? 0
        lastContact = now
        nextInventory = now + settings.inventoryInterval
        nextReconcile = now + settings.reconcileInterval
        // One coordinator: it is followed from the start, as before there could be several.
        if settings.coordinators == 1 { following = 0 }
    }

    public var isRegistered: Bool { phase == .syncing || phase == .active }
    public var isIdle: Bool { inFlight == nil && waiting == nil }

    /// Whether the held state is on the host in full.
    public var isSettled: Bool { isIdle && failures.isEmpty && applied?.revision == held }

    public mutating func handle(_ event: Event) -> [Action] {
        var out: [Action] = []
        switch event {
        case .tick(let now): tick(now, &out)
        case .received(let payloads, let fromPublisher, let source, let now): receive(payloads, fromPublisher: fromPublisher, source: source, now, &out)
        case .applied(let job, let report, let seconds, let daemonDown, let now): finished(job, report, seconds: seconds, daemonDown: daemonDown, now, &out)
        case .hostChecked(let daemonDown, let learnedChanged, let now):
            hostCheckPending = false
            if learnedChanged { out.append(.sendInventory(drift: [])) }
            // A dead dhcpd means instances that cannot renew: repaired now, not at the next reconcile. One that
            // will not start is then the apply's `dhcpd` failure: retried with back-off, logged once per cause.
            if daemonDown, settings.reconcileInterval > 0, now >= nextDaemonRepair, canReapply {
                nextReconcile = now + settings.reconcileInterval
                reapply(.repair, &out)
            }
        case .neighborsChanged(let now):
            nextInventory = now + settings.inventoryInterval
            out.append(.sendInventory(drift: []))
        case .probeFinished(let report, let now):
            let seconds = probe.map { now - $0.started } ?? 0
            probe = nil
            out.append(.log("VLAN verification \(report.probeID): reporting \(report.results.count) results after \(String(format: "%.1f", seconds)) s"
                + (report.error.isEmpty ? "" : "; error: \(report.error)"), .info, revision: nil))
            out.append(.sendProbeReport(report))
        }
        return out
    }

    // MARK: time

    mutating func tick(_ now: Double, _ out: inout [Action]) {
        if now >= nextHeartbeat {
            nextHeartbeat = now + settings.heartbeatInterval
            if isRegistered {
                heartbeatSequence += 1
                out.append(.heartbeat(sequence: heartbeatSequence, appliedRevision: applied?.revision ?? 0, applying: inFlight?.revision ?? 0))
            } else {
                if phase == .unregistered {
                    out.append(.log("starting; holding revision \(held)" + (settings.coordinators > 1 ? "; listening to \(settings.coordinators) coordinators for the leader" : ""), .info, revision: held))
                    phase = .registering
                }
                if following != nil { out.append(.register(appliedRevision: applied?.revision ?? 0)) }
            }
            if phase != .coordinatorLost, now - lastContact > 3 * settings.heartbeatInterval {
                phase = .coordinatorLost
                out.append(.log("coordinator silent for \(Int(now - lastContact)) s; keeping the host as it is and reconnecting", .warning, revision: held))
            }
        }
        if now >= nextInventory {
            nextInventory = now + settings.inventoryInterval
            out.append(.sendInventory(drift: []))
        }
        if now >= nextHostCheck, !hostCheckPending, isIdle {
            nextHostCheck = now + settings.hostCheckInterval
            hostCheckPending = true
            out.append(.checkHost)
        }
        guard canReapply else { return }
        if settings.reconcileInterval > 0, now >= nextReconcile {
            nextReconcile = now + settings.reconcileInterval
            reapply(.reconcile, &out)
        } else if let retryAt, now >= retryAt {
            reapply(.retry, &out)
        }
    }

    /// Whether the held state may be applied again now: there is one, nothing else is being applied, and no
    /// kernel-method verification has devices on the host.
    var canReapply: Bool { heldState != nil && isIdle && probe?.kernel != true }

    mutating func reapply(_ trigger: Trigger, _ out: inout [Action]) {
        guard let heldState, let heldDigest else { return }
        let job = ApplyJob(revision: held, state: heldState, digest: heldDigest, trigger: trigger)
        inFlight = job
        out.append(.apply(job))
    }

    // MARK: messages

    mutating func receive(_ payloads: [[UInt8]], fromPublisher: Bool, source: Int, _ now: Double, _ out: inout [Action]) {
        guard source == following || fromPublisher else { return }  // a reply from a coordinator no longer followed
        // Updates on PUB: the header alone says whether this is news; only news is decoded in full, and of a
        // burst only the last of each chain (see SyncDecision.coalesce).
        let followed = source == following
        let headers = fromPublisher ? payloads.map { IntentFrame.peek($0, clusterID: settings.clusterID) } : []
        var chosen: Int?
        // Another coordinator's updates (a standby publishes none; a deposed leader might) are never news.
        if fromPublisher, followed {
            let decision = SyncDecision.coalesce(headers.map { header in
                header.flatMap { $0.nodeID == settings.nodeID ? ($0.revision, $0.previousRevision) : nil }
            }, held: held)
            chosen = decision.apply
            if let gap = decision.gap {
                requestSnapshot("missed an update (got \(gap.revision) after \(gap.previous), holding \(held))", now, &out)
            }
        }
        for (index, payload) in payloads.enumerated() {
            if fromPublisher, let header = headers[index] {
                guard followed else { continue }
                guard header.nodeID == settings.nodeID else { refusals.countUnauthorized(); continue }
                guard header.epoch == epoch else { continue }
                contact(now, &out)
                guard index == chosen else { continue }  // not news, or superseded later in this burst
            }
            switch codec.decode(payload) {
            case .failure(let refusal): refusals.count(refusal)
            case .success(.coordinatorHeartbeat(let heartbeat)) where fromPublisher:
                heard(heartbeat, source: source, now, &out)
            case .success(let body):
                guard followed else { continue }
                handle(body, fromPublisher: fromPublisher, now, &out)
            }
        }
    }

    mutating func handle(_ body: Vnet_V1_Envelope.OneOf_Body, fromPublisher: Bool, _ now: Double, _ out: inout [Action]) {
        switch body {
        case .coordinatorHeartbeat(let heartbeat):
            guard heartbeat.epoch == epoch else { return }
            contact(now, &out)
            guard !fromPublisher, isRegistered else { return }
            desiredRevision = heartbeat.desiredRevision
            switch SyncDecision.forHeartbeat(desired: heartbeat.desiredRevision, held: held) {
            case .requestSnapshot: requestSnapshot("coordinator wants revision \(heartbeat.desiredRevision), holding \(held)", now, &out)
            case .stale: noteStale(heartbeat.desiredRevision, &out)
            case .apply, .ignore: break
            }
        case .registerReply(let reply):
            guard reply.epoch == epoch || epoch == 0 else { return }  // an answer from before the leader changed
            contact(now, &out)
            if epoch == 0 { epoch = reply.epoch }
            if reply.accepted {
                lastRefusal = ""
                // Replies to registrations sent while waiting may come in pairs: one snapshot is enough.
                guard !isRegistered else { return }
                out.append(.log("registered (coordinator epoch \(reply.epoch))", .info, revision: nil))
                let expected = Double(reply.heartbeatIntervalMs) / 1000
                if expected > 0, abs(expected - settings.heartbeatInterval) > 0.001 {
                    // Liveness is judged by the coordinator's interval: a slower agent is seen SUSPECT and DOWN.
                    out.append(.log("the coordinator expects a heartbeat every \(expected) s, this agent sends one every \(settings.heartbeatInterval) s: give both the same --heartbeat-interval", .warning, revision: nil))
                }
                phase = .syncing
                requestSnapshot(nil, now, &out)
            } else {
                phase = .refused
                // It is asked again every interval; say so once per reason, not once a second.
                if reply.error != lastRefusal { out.append(.log("registration refused: \(reply.error)", .info, revision: nil)) }
                lastRefusal = reply.error
            }
        case .probeCommand(let command) where !fromPublisher:
            startProbe(command, now, &out)
        case .diagnoseCommand(let command) where !fromPublisher:
            out.append(.diagnose(command))
        case .intent(let state):
            guard state.nodeID == settings.nodeID else { refusals.countUnauthorized(); return }
            guard state.epoch == epoch else { return }
            contact(now, &out)
            // Refused at registration (another mode, the wrong role): what is published for this name is not
            // for a host configured like this one; nothing is applied until a registration is accepted.
            guard phase != .refused else { return }
            offer(state, snapshot: !fromPublisher, now, &out)
        default:
            refusals.count(.malformed)
        }
    }

    /// A message of the coordinator followed, under its epoch.
    mutating func contact(_ now: Double, _ out: inout [Action]) {
        lastContact = now
        if phase == .coordinatorLost {
            out.append(.log("coordinator is back", .info, revision: nil))
            phase = .registering
            out.append(.register(appliedRevision: applied?.revision ?? 0))
        }
    }

    /// A coordinator's heartbeat on PUB: whom to follow. An active one of a higher epoch than the one followed
    /// is the new leader (or the one coordinator, restarted); the one followed saying "standby" stepped down.
    mutating func heard(_ heartbeat: Vnet_V1_CoordinatorHeartbeat, source: Int, _ now: Double, _ out: inout [Action]) {
        if heartbeat.standby {
            guard source == following, heartbeat.epoch == epoch else { return }
            following = nil
            phase = .coordinatorLost
            out.append(.log("coordinator #\(source + 1) stepped down from epoch \(epoch); keeping the host as it is until a leader is heard", .warning, revision: held))
            return
        }
        guard heartbeat.epoch != 0 else { return }
        if heartbeat.epoch > epoch {
            let first = epoch == 0 && following == source  // the one coordinator, heard for the first time: registering already
            let previous = following
            following = source
            epoch = heartbeat.epoch
            lastContact = now
            guard !first else { return }
            if previous == source, settings.coordinators == 1 {
                out.append(.log("coordinator restarted (epoch \(epoch)); re-registering and resynchronising", .info, revision: nil))
            } else {
                out.append(.log("following coordinator #\(source + 1), leading under epoch \(epoch); registering and resynchronising", .info, revision: nil))
            }
            if phase != .refused || previous != source { phase = .registering }
            out.append(.register(appliedRevision: applied?.revision ?? 0))
        } else if heartbeat.epoch == epoch, source == following {
            contact(now, &out)
        } else if heartbeat.epoch < epoch, !loggedLower.contains(heartbeat.epoch) {
            loggedLower.insert(heartbeat.epoch)
            out.append(.log("coordinator #\(source + 1) says it leads under epoch \(heartbeat.epoch), older than the epoch followed (\(epoch)): not followed", .warning, revision: nil))
        }
    }

    /// A desired state from the coordinator: from PUB it was found to be the next update (peek above); from a
    /// snapshot it is taken unless it is older than what is held or is exactly what is held.
    mutating func offer(_ message: Vnet_V1_Intent, snapshot: Bool, _ now: Double, _ out: inout [Action]) {
        if snapshot, message.revision < held {
            noteStale(message.revision, &out)
            return
        }
        desiredRevision = message.revision
        if phase == .syncing { phase = .active }
        let digest = message.state.digest
        if message.revision == held, heldState != nil, heldDigest == digest {
            // Held already (a snapshot answering a heartbeat that crossed an update): nothing new. Said again
            // only when nothing is in the slot, where the answer would be about another state.
            if isIdle { out.append(.acknowledge(revision: held, operations: 0, seconds: 0, failures: failures)) }
            return
        }
        let state: HostNetworkState
        do { state = try HostNetworkState(wire: message.state) } catch {
            refusals.count(.malformed)
            out.append(.log("refused a desired state: \(error)", .error, revision: message.revision))
            out.append(.acknowledge(revision: message.revision, operations: 0, seconds: 0,
                                    failures: [.init(.refused, object: "desired state", error: "\(error)")]))
            return
        }
        held = message.revision
        heldState = state
        heldDigest = digest
        loggedStale = nil
        let job = ApplyJob(revision: message.revision, state: state, digest: digest, trigger: .update)
        if inFlight == nil {
            begin(job, &out)
        } else {
            if let superseded = waiting, superseded.trigger == .update {
                out.append(.log("revision \(superseded.revision) superseded by \(job.revision) before it was applied", .info, revision: job.revision))
            }
            waiting = job
        }
    }

    mutating func begin(_ job: ApplyJob, _ out: inout [Action]) {
        if job.trigger == .update, let applied, applied.digest != 0, applied.digest == job.digest {
            // The host already has this state (a restarted agent, or a change and its undoing): take the
            // revision, apply nothing.
            if applied.revision != job.revision { record(AppliedRecord(revision: job.revision, digest: job.digest), &out) }
            out.append(.acknowledge(revision: job.revision, operations: 0, seconds: 0, failures: []))
            return
        }
        inFlight = job
        out.append(.apply(job))
    }

    mutating func finished(_ job: ApplyJob, _ report: ApplyReport, seconds: Double, daemonDown: Bool, _ now: Double, _ out: inout [Action]) {
        guard inFlight?.revision == job.revision, inFlight?.trigger == job.trigger else { return }  // not asked for: one apply at a time
        inFlight = nil
        let current = waiting == nil  // nothing newer came meanwhile: this report is about the held state
        if job.trigger == .update {
            // A state applied in part is held (its revision is what the host is meant to have, and what is
            // retried), but not recorded as on the host: a restarted agent applies it again.
            record(AppliedRecord(revision: job.revision, digest: report.isComplete ? job.digest : 0), &out)
            out.append(.log("applied \(report.operations) operations" + (report.isComplete ? "" : "; \(report.failures.count) objects not as desired"),
                            .info, revision: job.revision))
            settle(report, revision: job.revision, now, &out)
            out.append(.acknowledge(revision: job.revision, operations: report.operations, seconds: seconds, failures: report.failures))
            out.append(.sendInventory(drift: report.drift))
        } else {
            let before = failures
            if !report.drift.isEmpty {
                out.append(.log("repaired drift with \(report.operations) operations: \(report.drift.joined(separator: "; "))", .warning, revision: job.revision))
            }
            settle(report, revision: job.revision, now, &out)
            if report.failures != before, current {
                // The coordinator (and `--wait`) hear of a failure that appeared, changed or went away.
                if report.isComplete, applied?.revision == job.revision { record(AppliedRecord(revision: job.revision, digest: job.digest), &out) }
                out.append(.acknowledge(revision: job.revision, operations: report.operations, seconds: seconds, failures: report.failures))
            }
            if report.operations > 0 || report.failures != before { out.append(.sendInventory(drift: report.drift)) }
            if job.trigger == .repair { nextDaemonRepair = daemonDown ? now + settings.reconcileInterval : now }
        }
        if let next = waiting {
            waiting = nil
            begin(next, &out)
        }
    }

    mutating func record(_ record: AppliedRecord, _ out: inout [Action]) {
        applied = record
        out.append(.record(record))
    }

    /// Logs what changed in a report's failures and notes, and schedules the retry of what failed: 0.5 s, then
    /// doubling to 8 s, until the host has all of it or another state arrives.
    mutating func settle(_ report: ApplyReport, revision: UInt64, _ now: Double, _ out: inout [Action]) {
        failures = report.failures
        let lines = report.failureLines
        if lines != loggedFailures {
            if lines.isEmpty { out.append(.log("every object of the held state is on the host now", .info, revision: revision)) }
            for line in lines { out.append(.log("not applied: \(line)", .error, revision: revision)) }
            loggedFailures = lines
        }
        if report.notes != loggedNotes {
            for note in report.notes { out.append(.log(note, .info, revision: revision)) }
            loggedNotes = report.notes
        }
        if report.isComplete {
            retryAt = nil
            retryDelay = 0
        } else {
            retryDelay = min(max(retryDelay * 2, 0.5), 8)
            retryAt = now + retryDelay
        }
    }

    /// At most one request a heartbeat interval (`reason` nil: the one after registering, sent at once).
    mutating func requestSnapshot(_ reason: String?, _ now: Double, _ out: inout [Action]) {
        guard reason == nil || now - lastSnapshotRequest > settings.heartbeatInterval else { return }
        lastSnapshotRequest = now
        out.append(.requestSnapshot)
        if let reason { out.append(.log("asking for a snapshot: \(reason)", .info, revision: nil)) }
    }

    /// The coordinator offers an older revision than the one held: a snapshot asked for before a newer update
    /// came, or a coordinator whose database went back in time. Never applied; said once per revision.
    mutating func noteStale(_ revision: UInt64, _ out: inout [Action]) {
        guard loggedStale != revision else { return }
        loggedStale = revision
        out.append(.log("the coordinator offers revision \(revision), older than the revision held (\(held)): not applied", .warning, revision: held))
    }

    // MARK: VLAN verification

    mutating func startProbe(_ command: Vnet_V1_ProbeCommand, _ now: Double, _ out: inout [Action]) {
        var refusal = Vnet_V1_ProbeReport()
        refusal.probeID = command.probeID
        refusal.nodeID = settings.nodeID
        guard settings.canProbe else {
            refusal.error = "this agent cannot probe (no packet sockets)"
            return out.append(.sendProbeReport(refusal))
        }
        guard probe == nil else {
            refusal.error = "a verification is already running on this host"
            return out.append(.sendProbeReport(refusal))
        }
        guard command.peers.count == command.peerMacs.count, command.peers.count <= 4096,
              command.vlans.allSatisfy({ (2...4094).contains($0) }), (1...100).contains(command.count),
              (1...120_000).contains(command.timeoutMs), command.listenMs < command.timeoutMs,
              command.expectedMtu == 0 || VNetConfig.mtuRange.contains(Int(command.expectedMtu)),
              command.hub.isEmpty || command.peers.contains(command.hub),
              let method = VLANProbeMethod(wire: command.method), !(command.mtu && method == .kernel) else {
            refusals.count(.malformed)
            refusal.error = "a malformed probe command"
            return out.append(.sendProbeReport(refusal))
        }
        probe = (command.probeID, method == .kernel, now)
        out.append(.log("VLAN verification \(command.probeID): probing \(command.peers.count) peers on \(command.vlans.count) VIDs", .info, revision: nil))
        out.append(.startProbe(command))
    }
}
