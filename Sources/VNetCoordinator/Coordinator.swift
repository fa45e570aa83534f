import Foundation
import SwiftProtobuf
import VNetBus
import VNetSystem
import VNetCore
import VNetProto
import VNetStore
import ZMQ
import Logging

/// The coordinator: owns the cluster's allocations and publishes every host's desired state.
///
/// One thread, one `zmq_poll` loop over its sockets (libzmq sockets belong to one thread):
/// - PUB (`publish`): each host's Intent under the topic `n/HOST/`, and heartbeats under `hb/` (ZeroMQ
///   guide's Clone pattern: updates on PUB, snapshots on request).
/// - ROUTER (`sync`): agents register, ask for snapshots, heartbeat (answered with their desired revision),
///   report inventory and apply results. CURVE domain "nodes": only allow-listed node keys connect, and the
///   User-Id of each message must be the node it speaks for.
/// - ROUTER (`control`): vnetctl's requests. CURVE domain "control": admin keys only.
/// - REP on `inproc://zeromq.zap.01`: the ZAP handler that decides those admissions.
/// Control requests and registrations are taken in batches: one store commit per batch (committed before
/// any reply), one replan, one publish of the hosts whose state changed.
///
/// Alone on its SQLite file it always leads. Several on one PostgreSQL store (`.shared`) lead in turn: only the
/// holder of the store's lease serves (LeaseKeeper); the others bind the same sockets, publish heartbeats that
/// say "standby", and answer control requests with where the leader is. Becoming the leader loads the state
/// from the store under the new epoch; stepping down drops it.
public final class Coordinator {
    /// Who decides that this coordinator leads.
    public enum Leading {
        /// The only coordinator of its store, under this epoch (SQLiteClusterStore.startEpoch).
        case sole(epoch: UInt64)
        /// One of several on a shared store: the lease decides.
        case shared(LeaseKeeper)
    }

    public let config: VNetConfig
    public let options: CoordinatorOptions
    public private(set) var endpoints: BusEndpoints
    let store: ClusterStore
    let codec: EnvelopeCodec
    let planner: HostPlanner
    let handler: ControlHandler
    /// The epoch this coordinator leads under; with a shared store, the last one it led under (see `leading`).
    var epoch: UInt64 = 0
    let leases: LeaseKeeper?
    /// Whether this coordinator serves now (holds the state, publishes, answers).
    var leading = false
    var standbyReason = "starting"

    var allocator: Allocator
    var revision: UInt64
    var hostRevisions: [String: NodeRevision]
    var desired: [String: HostNetworkState]
    /// Each host's desired state serialized once per change; every publication and snapshot reuses it.
    var serializedStates: [String: [UInt8]] = [:]
    /// The agents' protocol: admission, liveness, heartbeat replies, snapshots, reports, operation rounds.
    var session: CoordinatorSession
    /// Numbers the cluster operations (VLAN verifications, diagnoses) of this coordinator's epoch.
    var operationCounter = 0
    /// MANAGED: the VLANs that came up on nodes, checked with the front end (BringUpQueue).
    var bringUps = BringUpQueue()
    /// `--watch-vlans`: the paths watched, the round under way and when the next may start.
    var watch: VLANWatch?
    var watchRound: (id: String, round: VLANWatch.Round)?
    var nextWatchAt = 0.0
    /// Operators' verifications that came while a background check ran: started when it ends.
    var deferredVerifications: [(verify: Vnet_V1_VerifyVlan, requestID: String, prefix: [[UInt8]])] = []
    var zapHandler: ZAPHandler?
    let log = Log.logger("coordinator")
    /// Served by `MetricsServer` when the daemon is given `--metrics`.
    public let metrics: MetricsRegistry

    let context = ZMQContext()
    let publisher: ZMQSocket
    let sync: ZMQSocket
    let control: ZMQSocket
    let zap: ZMQSocket?
    public let stopFlag = StopFlag()

    public init(config: VNetConfig, options: CoordinatorOptions, store: ClusterStore, leadership: Leading) throws {
        self.config = config
        self.options = options
        self.store = store
        codec = EnvelopeCodec(clusterID: options.clusterID)
        planner = HostPlanner(config: config)
        handler = ControlHandler(config: config)
        var settings = CoordinatorSession.Settings(epoch: epoch, mode: config.mode, frontend: options.frontendName,
                                                   authenticated: options.keysDirectory != nil, heartbeatInterval: options.heartbeatInterval)
        settings.suspectAfter = options.suspectAfter
        settings.downAfter = options.downAfter
        session = CoordinatorSession(settings: settings)
        metrics = MetricsRegistry(enabled: options.metrics)
        Self.declareMetrics(metrics)

        allocator = try Allocator(config: config, state: ClusterState(frontend: options.frontendName))
        revision = 0
        hostRevisions = [:]
        desired = [:]
        switch leadership {
        case .sole: leases = nil
        case .shared(let keeper): leases = keeper
        }

        // Sockets, secured unless --insecure.
        var serverSecret: String?
        if let keys = options.keysDirectory {
            guard ZMQContext.hasCurve else { throw BusError("this libzmq has no CURVE support (install libzmq5 built with libsodium)") }
            serverSecret = try CurveKeys.readPair(secretKeyFile: "\(keys)/coordinator.key").secretKey
            zapHandler = try ZAPHandler(keysDirectory: keys)
            let zapSocket = try ZMQSocket(context, .rep)
            try zapSocket.bind(ZAPHandler.endpoint)
            zap = zapSocket
        } else {
            zap = nil
        }
        func security(_ domain: String) -> SocketSecurity {
            serverSecret.map { .curveServer(secretKey: $0, zapDomain: domain) } ?? .insecure
        }
        publisher = try ZMQSocket(context, .pub)
        sync = try ZMQSocket(context, .router)
        control = try ZMQSocket(context, .router)
        try security("nodes").apply(to: publisher)
        try security("nodes").apply(to: sync)
        try security("control").apply(to: control)
        for socket in [sync, control] {
            try socket.set(.maxMessageSize, int64: 4 << 20)  // a frame larger than this is dropped by libzmq
            try socket.set(.heartbeatInterval, Int32(options.heartbeatInterval * 1000))
            try socket.set(.heartbeatTimeout, Int32(options.heartbeatInterval * 3000))
            try socket.set(.routerMandatory, 0)
        }
        try publisher.set(.sendHighWaterMark, 100_000)
        // ZMTP heartbeats on every socket: a subscriber or agent that froze is dropped by libzmq itself.
        try publisher.set(.heartbeatInterval, Int32(options.heartbeatInterval * 1000))
        try publisher.set(.heartbeatTimeout, Int32(options.heartbeatInterval * 3000))
        do {
            // Port 0 (any free port): the ports of the last run first, from its endpoints file, so that peers
            // holding that file reach this coordinator again; new ones if they are taken meanwhile.
            let previous = try? BusEndpoints.load(from: "\(options.stateDirectory)/\(BusEndpoints.fileName)")
            for (socket, wanted, before) in [(publisher, options.listen.publish, previous?.publish), (sync, options.listen.sync, previous?.sync),
                                             (control, options.listen.control, previous?.control)] {
                let again = BusEndpoints.reusing(wanted, previous: before)
                if again != wanted, (try? socket.bind(again)) != nil { continue }
                try socket.bind(wanted)
            }
        } catch {
            throw BusError("cannot listen on \(options.listen.publish), \(options.listen.sync), \(options.listen.control): \(error)")
        }
        endpoints = BusEndpoints(publish: BusEndpoints.connectable(publisher.lastEndpoint),
                                 sync: BusEndpoints.connectable(sync.lastEndpoint),
                                 control: BusEndpoints.connectable(control.lastEndpoint))
        try endpoints.write(to: "\(options.stateDirectory)/\(BusEndpoints.fileName)")
        if case .sole(let epoch) = leadership {
            try load(epoch: epoch)
            try reconcileRevisionsAtStart()
        }
        session.committed(desired: desiredRevisions, cluster: revision)
        log.info("\(config.mode.rawValue) cluster '\(options.clusterID)', \(leases == nil ? "epoch \(epoch), revision \(revision), \(allocator.state.nodes.count) nodes, \(allocator.state.instances.count) instances" : "store \(store.location) shared, standing by until it holds the lease"); publish \(endpoints.publish), sync \(endpoints.sync), control \(endpoints.control)\(options.keysDirectory == nil ? "; INSECURE: no CURVE, any peer may connect and claim any node" : "")",
                 metadata: ["revision": "\(revision)"])
        if let warning = Self.outsideRangeWarning(allocator) { log.warning("\(warning)") }
        if leases != nil, options.advertise == nil, advertisedControl.hasPrefix("tcp://127.") {
            log.warning("no --advertise: standbys will send clients to \(advertisedControl), which reaches this coordinator only from its own host; give --advertise HOST with the name the other hosts use")
        }
        if options.watchVLANs {
            log.info("watching every node's path to the front end on each VLAN it carries: \(Int(options.watchFramesPerSecond)) frames/s for the cluster, a change after \(options.watchHysteresis) rounds")
        }
    }

    /// Loads the state from the store and serves it under `epoch`: at start alone on a store, or on taking the
    /// lease. Nothing of a previous leadership (sessions, operations under way) is kept.
    func load(epoch newEpoch: UInt64) throws {
        let stored = try store.load()
        var state = stored.state
        state.frontend = options.frontendName
        do { allocator = try Allocator(config: config, state: state) } catch {
            throw BusError("the stored cluster in \(store.location) does not fit the current eucalyptus.conf: \(error) (restore the config it was made with, or move the state away to start empty)")
        }
        epoch = newEpoch
        revision = stored.revision
        hostRevisions = stored.nodeRevisions
        desired = try planner.desiredStates(for: allocator.state)
        serializedStates = [:]
        var settings = session.settings
        settings.epoch = newEpoch
        session = CoordinatorSession(settings: settings)
        session.committed(desired: desiredRevisions, cluster: revision)
        bringUps = BringUpQueue()
        watchRound = nil
        deferredVerifications = []
        watch = options.watchVLANs ? VLANWatch(framesPerSecond: options.watchFramesPerSecond, hysteresis: options.watchHysteresis) : nil
        if watch != nil { trackWatchedPaths(desired) }
        leading = true
    }

    /// The shared store's lease, looked at every turn of the loop: take over, or step down.
    func followLease(at now: Double) {
        guard let leases else { return }
        let lease = leases.view()
        if lease.leads(at: now) {
            guard !leading || epoch != lease.epoch else { return }
            let started = monotonicSeconds()
            do {
                try load(epoch: lease.epoch)
                // Host revisions made under a config changed while no coordinator led.
                try reconcileRevisionsAtStart()
                session.committed(desired: desiredRevisions, cluster: revision)
            } catch {
                leading = false
                leases.relinquish("cannot load the state: \(error)")
                return
            }
            metrics.add("vnet_coordinator_failovers_total")
            log.notice("leading under epoch \(epoch): revision \(revision), \(allocator.state.nodes.count) nodes, \(allocator.state.instances.count) instances, loaded from \(store.location) in \(Int((monotonicSeconds() - started) * 1000)) ms",
                       metadata: ["revision": "\(revision)"])
            publishHeartbeat()
            publishIntents(desired.keys.sorted())
        } else if leading {
            // The loop may see the lease run out before the keeper (blocked on the store) says why.
            stepDown(lease.role == .active ? "the lease of epoch \(lease.epoch) ran out unrenewed (the store does not answer in time)" : lease.standbyReason)
        } else {
            standbyReason = lease.standbyReason
        }
    }

    /// Stops serving: the state is dropped (it is loaded again on taking the lease), agents are told by the
    /// next heartbeat, requests are answered with where the leader is.
    func stepDown(_ reason: String) {
        guard leading else { return }
        leading = false
        standbyReason = reason
        log.warning("stepping down from epoch \(epoch): \(reason)")
        for deferred in deferredVerifications { refuseNotLeading(prefix: deferred.prefix, requestID: deferred.requestID) }
        deferredVerifications = []
        allocator = (try? Allocator(config: config, state: ClusterState(frontend: options.frontendName))) ?? allocator
        desired = [:]
        serializedStates = [:]
        publishHeartbeat()
    }

    /// The leader as a standby knows it: its control endpoint and epoch, from the lease.
    var knownLeader: (control: String, epoch: UInt64)? {
        guard let seen = leases?.view().seen, seen.isHeld, seen.holder != leases?.holder else { return nil }
        return (seen.control, seen.epoch)
    }

    /// A standby's answer to a control request: not carried out, and where to go.
    func refuseNotLeading(prefix: [[UInt8]], requestID: String) {
        var reply = Vnet_V1_ControlReply()
        reply.requestID = requestID
        reply.errorKind = ClusterError.Kind.notLeader.rawValue
        if let leader = knownLeader {
            reply.leader = leader.control
            reply.error = "not the leader; the leader is \(leader.control.isEmpty ? "another coordinator" : leader.control) (epoch \(leader.epoch))"
        } else {
            reply.error = "not the leader, and no coordinator leads now (\(standbyReason)); try again shortly"
        }
        metrics.add("vnet_control_requests_total", ["result": "not_leader"])
        send(control, prefix, .controlReply(reply))
    }

    /// Status from a coordinator that does not lead: its role and what it sees of the lease.
    func standbyStatus(prefix: [[UInt8]], requestID: String) {
        var reply = Vnet_V1_ControlReply()
        reply.requestID = requestID
        reply.ok = true
        reply.status = roleStatus()
        reply.status.clusterID = options.clusterID
        reply.status.mode = config.mode.rawValue
        send(control, prefix, .controlReply(reply))
    }

    /// The role part of Status, from any coordinator.
    func roleStatus() -> Vnet_V1_Status {
        var status = Vnet_V1_Status()
        status.standby = !leading
        status.store = store.location
        status.coordinator = advertisedControl
        status.standbyReason = leading ? "" : standbyReason
        if let lease = leases?.view() {
            status.failovers = UInt64(lease.failovers)
            if let seen = lease.seen, seen.isHeld { status.leader = seen.control; status.leaderEpoch = seen.epoch }
        }
        if leading { status.leader = advertisedControl; status.leaderEpoch = epoch; status.epoch = epoch }
        return status
    }

    /// This coordinator's control endpoint as clients reach it (`--advertise`).
    public var advertisedControl: String { options.advertise.map { BusEndpoints.advertised(endpoints.control, host: $0) } ?? endpoints.control }

    /// Groups kept on VIDs outside a narrowed VNET_VLANRANGE: they keep working, new groups do not go there.
    static func outsideRangeWarning(_ allocator: Allocator) -> String? {
        guard let layout = allocator.config.layout, !allocator.groupsOutsideVLANRange.isEmpty else { return nil }
        let groups = allocator.groupsOutsideVLANRange.sorted().compactMap { id in
            allocator.state.groups[id].map { "\(id) (VID \(layout.vlan(ofNetwork: $0.network)))" }
        }
        return "\(groups.count) stored group(s) lie outside VNET_VLANRANGE \(layout.vlanRange.lowerBound)-\(layout.vlanRange.upperBound) and keep their networks: \(groups.joined(separator: ", ")); new groups get VIDs from the range only"
    }

    public func stop() { stopFlag.stop() }

    /// Each host's desired revision (hosts with a desired state only).
    var desiredRevisions: [String: UInt64] { desired.keys.reduce(into: [:]) { $0[$1] = hostRevisions[$1]?.revision ?? revision } }

    /// A state that changed while the coordinator was down (config edited) gets a new revision now.
    func reconcileRevisionsAtStart() throws {
        var changed: [String: NodeRevision] = [:]
        for (host, state) in desired {
            let digest = state.wire.digest
            if let known = hostRevisions[host], known.digest == digest { continue }
            changed[host] = NodeRevision(revision: revision + 1, previous: hostRevisions[host]?.revision ?? 0, digest: digest)
        }
        guard !changed.isEmpty else { return }
        var change = StoreChange(revision: revision + 1)
        change.nodeRevisions = changed
        try store.commit(change, epoch: epoch)
        revision += 1
        hostRevisions.merge(changed) { $1 }
    }

    // MARK: loop

    enum Pending {
        case control(prefix: [[UInt8]], request: Vnet_V1_ControlRequest)
        case register(prefix: [[UInt8]], register: Vnet_V1_Register, node: String)
    }

    public func run() {
        leases?.start()
        defer { leases?.stop() }
        var nextHeartbeat = 0.0
        var nextLivenessCheck = 0.0
        var nextMetrics = 0.0
        let sockets = [sync, control] + (zap.map { [$0] } ?? [])
        while !stopFlag.isStopped {
            let ready = (try? ZMQPoller.readable(sockets, timeoutMilliseconds: 20)) ?? []
            if sockets.count > 2, ready.count > 2, ready[2] { serveZAP() }
            followLease(at: monotonicSeconds())
            var pending: [Pending] = []
            if ready.first == true { pending += drainSync() }
            if ready.count > 1, ready[1] { pending += drainControl() }
            if !pending.isEmpty { process(pending) }
            let now = monotonicSeconds()
            if now >= nextHeartbeat {
                publishHeartbeat()
                nextHeartbeat = now + options.heartbeatInterval
            }
            if leading, now >= nextLivenessCheck {
                _ = perform(session.handle(.tick(at: now, hosts: knownHosts)))
                startBackgroundCheck(at: now)
                nextLivenessCheck = now + 0.1
            }
            if metrics.isEnabled, now >= nextMetrics {
                refreshMetrics(at: now)
                nextMetrics = now + 1
            }
        }
        publisher.close(); sync.close(); control.close(); zap?.close()
    }

    // MARK: VLAN verification

    /// VIDs per verification: each is a listening set on every host and a row per pair in the reply.
    static let maxVerifiedVLANs = 512

    /// `verify-vlan --range`: every VID of VNET_VLANRANGE the subnet reaches, or why not.
    static func rangeVLANs(_ config: VNetConfig) -> Result<[Int], ClusterError> {
        guard config.mode == .managed, let layout = config.layout else { return .failure(ClusterError("--range: this cluster is not in MANAGED mode")) }
        guard let allowed = layout.allocatableVLANs else { return .failure(ClusterError("--range: VNET_VLANRANGE reaches none of the subnet's networks")) }
        guard allowed.count <= maxVerifiedVLANs else {
            let pieces = stride(from: allowed.lowerBound, through: allowed.upperBound, by: maxVerifiedVLANs)
                .map { "--vlans \($0)-\(min(allowed.upperBound, $0 + maxVerifiedVLANs - 1))" }
            return .failure(ClusterError("--range: VNET_VLANRANGE gives VIDs \(allowed.lowerBound)-\(allowed.upperBound) (\(allowed.count)); a verification covers at most \(maxVerifiedVLANs): check them in parts, \(pieces.joined(separator: "; "))"))
        }
        return .success(Array(allowed))
    }

    /// Tells every reachable participant to listen, then probe every other (see VLANVerificationRun).
    func startVerification(_ verify: Vnet_V1_VerifyVlan, requestID: String, prefix: [[UInt8]]) {
        func refuse(_ message: String) {
            var reply = Vnet_V1_ControlReply()
            reply.requestID = requestID
            reply.error = message
            send(control, prefix, .controlReply(reply))
        }
        var vlans = verify.vlans.map(Int.init)
        if verify.managed {
            guard config.mode == .managed, let layout = config.layout else { return refuse("--managed: this cluster is not in MANAGED mode") }
            let active = Set(allocator.state.instances.values.compactMap(\.group))
            vlans += allocator.state.groups.values.filter { active.contains($0.id) }.map { layout.vlan(ofNetwork: $0.network) }
        }
        if verify.range {
            switch Self.rangeVLANs(config) {
            case .success(let range): vlans += range
            case .failure(let refusal): return refuse(refusal.message)
            }
        }
        vlans = Array(Set(vlans)).sorted()
        guard !vlans.isEmpty else { return refuse("no VLANs to verify: give --vlans, or --managed with running instances") }
        guard vlans.allSatisfy({ (2...4094).contains($0) }), vlans.count <= Self.maxVerifiedVLANs else {
            return refuse("VIDs are 2-4094, at most \(Self.maxVerifiedVLANs) at once")
        }
        let known = Set(allocator.state.nodes.keys)
        if let unknown = verify.nodes.first(where: { !known.contains($0) }) { return refuse("no node '\(unknown)' in this cluster") }
        var hosts = verify.nodes.isEmpty ? allocator.state.nodes.keys.sorted() : Array(Set(verify.nodes)).sorted()
        if verify.frontend { hosts = [options.frontendName] + hosts.filter { $0 != options.frontendName } }
        guard hosts.count >= 2 else { return refuse("a verification needs at least two hosts (add --frontend, or more nodes)") }
        let now = monotonicSeconds()
        let unreachable = Set(hosts.filter { !session.reachable($0, at: now) })
        let count = verify.count == 0 ? 3 : min(verify.count, 100)
        let timeout = verify.timeoutMs == 0 ? 3000 : min(verify.timeoutMs, 60_000)
        operationCounter += 1
        let id = "verify-\(epoch)-\(operationCounter)"
        guard let method = VLANProbeMethod(wire: verify.method) else { return refuse("--method is raw or kernel") }
        if verify.mtu, method == .kernel { return refuse("--mtu needs the raw method (padded frames); the kernel method pings through devices") }
        if verify.expectedMtu != 0, !VNetConfig.mtuRange.contains(Int(verify.expectedMtu)) {
            return refuse("--expect-mtu: an MTU is \(VNetConfig.mtuRange.lowerBound)-\(VNetConfig.mtuRange.upperBound) bytes")
        }
        var run = VLANVerificationRun(id: id, replyPrefix: prefix, requestID: requestID, vlans: vlans, hosts: hosts, control: method != .kernel,
                                      unreachable: unreachable, deadline: now + Double(timeout) / 1000 + 3)
        run.mtu = verify.mtu
        run.frontend = options.frontendName
        run.dhcp = verify.dhcp
        run.ports = Dictionary(uniqueKeysWithValues: hosts.compactMap { host in session.reports[host]?.neighbors.first.map { (host, $0) } })
        run.mode = config.mode
        run.allowedDHCPServers = Set([session.interfaceMACs[options.frontendName]].compactMap { $0 }.filter { $0 != 0 }.map(MACAddress.init))
        run.expected = verify.expectedMtu != 0 ? MTUVerification.Expectation(mtu: Int(verify.expectedMtu), source: "--expect-mtu")
            : config.mtu.map { MTUVerification.Expectation(mtu: $0, source: "VNET_MTU") }
        var command = Vnet_V1_ProbeCommand()
        command.probeID = id
        command.vlans = vlans.map(UInt32.init)
        command.peers = run.participants
        command.peerMacs = run.participants.map { session.interfaceMACs[$0] ?? 0 }
        command.count = count
        command.timeoutMs = timeout
        command.listenMs = 500
        command.method = verify.method
        command.mtu = verify.mtu
        command.dhcp = verify.dhcp
        command.expectedMtu = UInt32(run.expected?.mtu ?? 0)
        _ = perform(session.start(run, command))
        log.info("VLAN verification \(id): \(run.participants.count) hosts, VIDs \(vlans.map(String.init).joined(separator: ",")); unreachable: \(unreachable.sorted().joined(separator: ", "))")
    }

    var knownHosts: [String] { [options.frontendName] + allocator.state.nodes.keys.sorted() }

    func serveZAP() {
        guard let zap else { return }
        while let message = try? zap.receive(wait: false) {
            let answer = zapHandler?.answer(message.frames) ?? []
            if !answer.isEmpty { try? zap.send(answer) }
        }
    }

    /// Reads what agents sent; answers what needs no commit at once, returns registrations for the batch.
    func drainSync() -> [Pending] {
        var pending: [Pending] = []
        for _ in 0..<options.maxBatch {
            guard let message = try? sync.receive(wait: false) else { break }
            // A standby serves no agent: they follow the leader's heartbeats, and this one says "standby".
            guard leading else { continue }
            guard message.frames.count >= 2, let payload = message.frames.last else { session.refused(.malformed); continue }
            let prefix = Array(message.frames.dropLast())
            switch codec.decode(payload) {
            case .failure(let refusal):
                session.refused(refusal)
            case .success(let body):
                pending += perform(session.handle(.received(body, prefix: prefix, user: message.userID, peer: message.peerAddress, at: monotonicSeconds())))
            }
        }
        return pending
    }

    /// Carries out the session's actions; registrations are returned for the batch.
    func perform(_ actions: [CoordinatorSession.Action]) -> [Pending] {
        var pending: [Pending] = []
        for action in actions {
            switch action {
            case .reply(let prefix, let body): send(sync, prefix, body)
            case .sendSnapshot(let prefix, let host):
                if let frame = intentFrame(host) { try? sync.send(prefix + [frame], wait: false) }
            case .register(let prefix, let register): pending.append(.register(prefix: prefix, register: register, node: register.nodeID))
            case .answer(let prefix, let reply): send(control, prefix, .controlReply(reply))
            case .finishDiagnosis(let run): finishDiagnosis(run)
            case .finishBackground(let run): finishBackground(run)
            case .count(let name, let labels): metrics.add(name, labels)
            case .gauge(let name, let labels, let value): metrics.set(name, labels, value)
            case .log(let level, let text, let metadata):
                let meta = Logger.Metadata(uniqueKeysWithValues: metadata.map { ($0.key, Logger.MetadataValue.string($0.value)) })
                switch level {
                case .info: log.info("\(text)", metadata: meta)
                case .notice: log.notice("\(text)", metadata: meta)
                case .warning: log.warning("\(text)", metadata: meta)
                case .error: log.error("\(text)", metadata: meta)
                }
            }
        }
        return pending
    }

    func drainControl() -> [Pending] {
        var pending: [Pending] = []
        for _ in 0..<options.maxBatch {
            guard let message = try? control.receive(wait: false) else { break }
            guard message.frames.count >= 2, let payload = message.frames.last else { session.refused(.malformed); continue }
            if options.keysDirectory != nil, message.userID?.hasPrefix("admin:") != true {
                session.refusedUnauthorized()
                continue
            }
            switch codec.decode(payload) {
            case .success(.controlRequest(let request)) where !leading:
                if case .status = request.op { standbyStatus(prefix: Array(message.frames.dropLast()), requestID: request.requestID) }
                else { refuseNotLeading(prefix: Array(message.frames.dropLast()), requestID: request.requestID) }
            case .success(.controlRequest(let request)):
                if case .verifyVlan(let verify) = request.op {
                    if backgroundRunning {
                        deferredVerifications.append((verify, request.requestID, Array(message.frames.dropLast())))
                    } else {
                        startVerification(verify, requestID: request.requestID, prefix: Array(message.frames.dropLast()))
                    }
                } else if case .diagnose(let diagnose) = request.op {
                    startDiagnosis(diagnose, requestID: request.requestID, prefix: Array(message.frames.dropLast()))
                } else {
                    pending.append(.control(prefix: Array(message.frames.dropLast()), request: request))
                }
            case .success:
                session.refused(.malformed)
            case .failure(let refusal):
                session.refused(refusal)
            }
        }
        return pending
    }

    // MARK: batch

    func process(_ pending: [Pending]) {
        let before = allocator.state
        var replies: [(socket: ZMQSocket, prefix: [[UInt8]], body: Vnet_V1_Envelope.OneOf_Body, mutating: Bool, reach: Set<String>?)] = []
        var changes: [String] = []
        // The nodes' table is built only for a batch that asks for it (status, nodes, instances): at 1000
        // nodes it costs more than a batch of run-instance requests itself.
        let view = currentView(nodes: pending.contains { if case .control(_, let request) = $0 { ControlHandler.needsNodeTable(request) } else { false } })
        for item in pending {
            switch item {
            case .control(let prefix, let request):
                let reach = ControlHandler.reachableHosts(of: request, in: allocator.state)
                let (reply, changed) = handler.handle(request, &allocator, view: view)
                replies.append((control, prefix, .controlReply(reply), changed, reach))
                if changed { changes.append(ControlRequestSummary.text(request)) }
            case .register(let prefix, let register, let node):
                var reply = Vnet_V1_RegisterReply()
                reply.epoch = epoch
                reply.heartbeatIntervalMs = UInt32(options.heartbeatInterval * 1000)
                if node == options.frontendName {
                    reply.accepted = true
                } else {
                    do {
                        let old = allocator.state.nodes[node]
                        try allocator.registerNode(.init(name: node, interface: register.interface, bridge: register.bridge))
                        reply.accepted = true
                        if old != allocator.state.nodes[node] {
                            changes.append("node \(node) \(old == nil ? "joined" : "registered again") with interface \(register.interface), bridge \(register.bridge)"
                                           + (register.agentVersion.isEmpty ? "" : " (\(register.agentVersion.prefix(64)))"))
                        }
                    } catch {
                        reply.accepted = false
                        reply.error = error.description
                    }
                }
                replies.append((sync, prefix, .registerReply(reply), reply.accepted, nil))
            }
        }
        var affected: [String] = []
        var doubt: String?
        if allocator.state != before {
            do {
                affected = try commit(from: before)
                logChanges(changes, hosts: affected)
            } catch {
                // Nothing was written: the allocations go back to what the store holds, and every request of
                // the batch that changed something is told it did not happen.
                metrics.add("vnet_commit_failures_total")
                let storeError = error as? StoreError
                let reason = "\(error)" + (leases == nil && storeError?.kind != .fenced ? StorageCondition.problem(at: options.stateDirectory).map { ": \($0)" } ?? "" : "")
                log.error("commit of revision \(revision + 1) failed, batch refused: \(reason)", metadata: ["revision": "\(revision + 1)"])
                allocator = (try? Allocator(config: config, state: before)) ?? allocator
                // Fenced (another leads) or of unknown outcome (the store went away mid-commit): what this
                // coordinator holds may not be the store's. It steps down and loads afresh under a new lease.
                if leases != nil, storeError?.kind != .rejected { doubt = reason }
                for index in replies.indices where replies[index].mutating {
                    switch replies[index].body {
                    case .controlReply(var reply):
                        reply.ok = false
                        reply.error = "not committed to \(store.location): \(reason)"
                        replies[index].body = .controlReply(reply)
                    case .registerReply(var reply):
                        reply.accepted = false
                        reply.error = "not committed: \(reason)"
                        replies[index].body = .registerReply(reply)
                    default: break
                    }
                }
            }
        }
        for reply in replies {
            var body = reply.body
            if case .controlReply(var control) = body {
                control.revision = revision
                if reply.mutating, control.ok { control.affectedNodes = reply.reach.map { reach in affected.filter(reach.contains) } ?? affected }
                let result = control.ok ? "ok" : control.error.hasPrefix("not committed") ? "not_committed" : "error"
                metrics.add("vnet_control_requests_total", ["result": result])
                body = .controlReply(control)
            }
            send(reply.socket, reply.prefix, body)
        }
        if let doubt {
            leases?.relinquish(doubt)
            stepDown(doubt)
        }
    }

    /// One line per committed change, with the revision and the hosts it changed; a large batch (a burst of
    /// requests committed together) is one line that counts them, so the log stays readable and cheap.
    func logChanges(_ changes: [String], hosts: [String]) {
        let metadata: Logger.Metadata = ["revision": "\(revision)", "hosts": "\(hosts.count > 20 ? "\(hosts.count) hosts" : hosts.joined(separator: ","))"]
        guard changes.count > 10 else {
            for change in changes { log.info("\(change)", metadata: metadata) }
            return
        }
        var kinds: [String: Int] = [:]
        for change in changes { kinds[String(change.prefix { $0 != " " }), default: 0] += 1 }
        let counts = kinds.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")
        log.info("\(changes.count) changes in one commit: \(counts); first: \(changes.prefix(3).joined(separator: "; "))", metadata: metadata)
    }

    /// Replans, commits allocations and new host revisions in one transaction, then publishes. Returns the
    /// hosts whose desired state changed.
    func commit(from before: ClusterState) throws -> [String] {
        let next = revision + 1
        let states = try planner.desiredStates(for: allocator.state)
        var changed: [String: NodeRevision] = [:]
        var serialized: [String: [UInt8]] = [:]
        for (host, state) in states where desired[host] != state {
            let wire = state.wire
            serialized[host] = (try? wire.serializedBytes()) ?? []
            changed[host] = NodeRevision(revision: next, previous: hostRevisions[host]?.revision ?? 0, digest: wire.digest)
        }
        let started = monotonicSeconds()
        try store.commit(StoreChange.between(before, allocator.state, revision: next, nodeRevisions: changed), epoch: epoch)
        metrics.observe("vnet_commit_seconds", monotonicSeconds() - started)
        revision = next
        noteVLANsUp(before: desired, after: states, changed: changed.keys, revision: next)
        if watch != nil { trackWatchedPaths(states) }
        desired = states
        hostRevisions.merge(changed) { $1 }
        serializedStates.merge(serialized) { $1 }
        session.committed(desired: desiredRevisions, cluster: revision)
        publishIntents(changed.keys.sorted())
        return changed.keys.sorted()
    }

    // MARK: messages

    /// The Intent envelope of a host, framed around its cached serialized state (see IntentFrame).
    func intentFrame(_ host: String) -> [UInt8]? {
        guard let state = desired[host] else { return nil }
        let bytes: [UInt8]
        if let cached = serializedStates[host] { bytes = cached } else {
            bytes = (try? state.wire.serializedBytes()) ?? []
            serializedStates[host] = bytes
        }
        let known = hostRevisions[host]
        let header = IntentFrame.Header(nodeID: host, epoch: epoch, revision: known?.revision ?? revision,
                                        previousRevision: known?.previous ?? 0, clusterRevision: revision)
        return IntentFrame.envelope(clusterID: options.clusterID, header: header, stateBytes: bytes)
    }

    /// Each host's desired state on PUB, under its topic `n/HOST/`.
    func publishIntents(_ hosts: [String]) {
        for host in hosts {
            if let frame = intentFrame(host) { try? publisher.send([Array("n/\(host)/".utf8), frame], wait: false) }
        }
    }

    func publishHeartbeat() {
        var heartbeat = Vnet_V1_CoordinatorHeartbeat()
        heartbeat.epoch = epoch
        heartbeat.clusterRevision = revision
        if !leading {
            heartbeat.standby = true
            if let leader = knownLeader { heartbeat.leader = leader.control; heartbeat.leaderEpoch = leader.epoch }
        }
        try? publisher.send([Array("hb/".utf8), codec.encode(.coordinatorHeartbeat(heartbeat))], wait: false)
    }

    func send(_ socket: ZMQSocket, _ prefix: [[UInt8]], _ body: Vnet_V1_Envelope.OneOf_Body) {
        // A peer whose queue is full (or that went away) loses this reply; it will ask again.
        try? socket.send(prefix + [codec.encode(body)], wait: false)
    }

    /// What control requests read of the cluster beyond the allocations: each node's links (run-instance
    /// refuses a vif that is one of them) and, when `nodes`, the table of nodes with their liveness and
    /// revisions, the learned addresses and the status.
    func currentView(nodes: Bool = true) -> ControlHandler.View {
        var view = ControlHandler.View()
        guard nodes else {
            for (host, report) in session.reports { view.links[host] = report.links }
            return view
        }
        let now = monotonicSeconds()
        var counts: [HostLiveness: UInt32] = [:]
        view.nodes = knownHosts.map { host in
            var info = Vnet_V1_NodeInfo()
            info.nodeID = host
            let state = session.liveness.state(of: host, at: now)
            counts[state, default: 0] += 1
            info.state = state.rawValue
            info.heartbeatAgeMs = session.liveness.age(of: host, at: now).map { UInt64(max(0, $0) * 1000) } ?? 0
            info.desiredRevision = hostRevisions[host]?.revision ?? 0
            info.appliedRevision = session.applied[host] ?? 0
            info.applyingRevision = session.applying[host] ?? 0
            info.address = session.peerAddresses[host] ?? ""
            if let node = allocator.state.nodes[host] {
                info.interface = node.interface
                info.bridge = node.bridge
            }
            info.vlanChecks = (bringUps.results[host] ?? [:]).values.sorted { $0.vlan < $1.vlan }.map { check in
                var wire = Vnet_V1_VlanCheck()
                wire.vlan = UInt32(check.vlan)
                wire.revision = check.revision
                wire.state = check.state.rawValue
                wire.detail = check.detail
                return wire
            }
            if let report = session.reports[host] {
                report.fill(&info)
                view.links[host] = report.links
                for learned in report.learned { view.learned[learned.instance] = ControlHandler.View.Learned(node: host, mac: learned.mac, address: learned.address) }
            }
            return info
        }
        view.status = roleStatus()
        view.status.clusterID = options.clusterID
        view.status.mode = config.mode.rawValue
        view.status.epoch = epoch
        view.status.revision = revision
        view.status.nodesUp = counts[.up] ?? 0
        view.status.nodesSuspect = counts[.suspect] ?? 0
        view.status.nodesDown = (counts[.down] ?? 0) + (counts[.new] ?? 0)
        view.status.instances = UInt32(allocator.state.instances.count)
        view.status.groups = UInt32(allocator.state.groups.count)
        view.status.droppedFrames = session.refusals.total
        view.status.refusedFrames = session.refusals.unauthorized + (zapHandler?.refused ?? 0)
        return view
    }
}
