import Testing
import VNetAgent
import VNetBus
import VNetCore
import VNetProto

/// The agent's protocol, event by event, with made-up times: no socket, no thread, no clock. Every phase and
/// the races a wall-clock test cannot reach on purpose (a snapshot overtaken by an update, updates arriving
/// during an apply, a coordinator restarting mid-apply, a heartbeat reply naming a newer revision).
@Suite("Agent session (the agent's protocol as a value)")
struct AgentSessionTests {
    static let codec = EnvelopeCodec(clusterID: "vnet")
    static let epoch: UInt64 = 77

    /// A different state for every `k` (a VLAN device eth0.k).
    static func state(_ k: Int) -> HostNetworkState {
        var state = HostNetworkState(host: "n1", role: .node, mode: .managed)
        state.requiredLinks = ["eth0"]
        state.vlanDevices = [.init(name: "eth0.\(k)", parent: "eth0", vlan: k)]
        return state
    }

    static func message(_ revision: UInt64, previous: UInt64, state k: Int, epoch: UInt64 = epoch, node: String = "n1") -> Vnet_V1_Intent {
        var message = Vnet_V1_Intent()
        message.nodeID = node
        message.epoch = epoch
        message.revision = revision
        message.previousRevision = previous
        message.state = state(k).wire
        return message
    }

    /// An update as the coordinator publishes it (hand-framed, as on the wire).
    static func update(_ revision: UInt64, previous: UInt64, state k: Int, epoch: UInt64 = epoch, node: String = "n1") -> [UInt8] {
        let message = message(revision, previous: previous, state: k, epoch: epoch, node: node)
        return IntentFrame.envelope(clusterID: "vnet", header: .init(nodeID: node, epoch: epoch, revision: revision, previousRevision: previous, clusterRevision: revision),
                                     stateBytes: try! message.state.serializedBytes())
    }

    static func snapshot(_ revision: UInt64, state k: Int, epoch: UInt64 = epoch) -> [UInt8] {
        codec.encode(.intent(message(revision, previous: 0, state: k, epoch: epoch)))
    }

    static func registerReply(accepted: Bool = true, epoch: UInt64 = epoch, error: String = "", heartbeatMs: UInt32 = 1000) -> [UInt8] {
        var reply = Vnet_V1_RegisterReply()
        reply.accepted = accepted
        reply.heartbeatIntervalMs = heartbeatMs
        reply.epoch = epoch
        reply.error = error
        return codec.encode(.registerReply(reply))
    }

    static func heartbeatReply(desired: UInt64, epoch: UInt64 = epoch) -> [UInt8] {
        var heartbeat = Vnet_V1_CoordinatorHeartbeat()
        heartbeat.epoch = epoch
        heartbeat.desiredRevision = desired
        return codec.encode(.coordinatorHeartbeat(heartbeat))
    }

    /// A session at time 0 (heartbeat 1 s, reconcile 10 s).
    static func session(applied: AppliedRecord? = nil, reconcile: Double = 10, canProbe: Bool = false) -> AgentSession {
        AgentSession(settings: .init(nodeID: "n1", heartbeatInterval: 1, reconcileInterval: reconcile, canProbe: canProbe), applied: applied, at: 0)
    }

    /// Registered and active, holding revision 5 (state 5) fully applied, at time 1.
    static func active() -> AgentSession {
        var session = session()
        _ = session.handle(.tick(at: 0))
        _ = session.handle(.hostChecked(daemonDown: false, learnedChanged: false, at: 0.05))
        _ = session.handle(.received([registerReply()], fromPublisher: false, at: 0.1))
        let actions = session.handle(.received([snapshot(5, state: 5)], fromPublisher: false, at: 0.2))
        let job = applies(actions)[0]
        _ = session.handle(.applied(job, ApplyReport(operations: 3), seconds: 0.1, daemonDown: false, at: 1))
        return session
    }

    static func applies(_ actions: [AgentSession.Action]) -> [AgentSession.ApplyJob] {
        actions.compactMap { if case .apply(let job) = $0 { job } else { nil } }
    }
    static func logs(_ actions: [AgentSession.Action]) -> [String] {
        actions.compactMap { if case .log(let text, _, _) = $0 { text } else { nil } }
    }
    static func records(_ actions: [AgentSession.Action]) -> [AppliedRecord] {
        actions.compactMap { if case .record(let record) = $0 { record } else { nil } }
    }
    static func acknowledged(_ actions: [AgentSession.Action]) -> [UInt64] {
        actions.compactMap { if case .acknowledge(let revision, _, _, _) = $0 { revision } else { nil } }
    }
    static func snapshots(_ actions: [AgentSession.Action]) -> Int { actions.filter { $0 == .requestSnapshot }.count }
    static func registers(_ actions: [AgentSession.Action]) -> Int {
        actions.filter { if case .register = $0 { true } else { false } }.count
    }

    // MARK: phases

    @Test func registersEveryIntervalUntilAcceptedThenSyncsAndHeartbeats() {
        var session = Self.session()
        #expect(session.phase == .unregistered)
        var actions = session.handle(.tick(at: 0))
        #expect(actions.contains(.register(appliedRevision: 0)) && session.phase == .registering)
        #expect(Self.registers(session.handle(.tick(at: 0.5))) == 0, "not before the interval")
        #expect(Self.registers(session.handle(.tick(at: 1.0))) == 1, "again after it")
        actions = session.handle(.received([Self.registerReply()], fromPublisher: false, at: 1.1))
        #expect(session.phase == .syncing && Self.snapshots(actions) == 1)
        #expect(!Self.logs(actions).contains { $0.contains("--heartbeat-interval") }, "the same interval on both sides")
        #expect(Self.snapshots(session.handle(.received([Self.registerReply()], fromPublisher: false, at: 1.2))) == 0,
                "a second reply to a registration sent while waiting asks for no second snapshot")
        actions = session.handle(.tick(at: 2.0))
        #expect(actions.contains(.heartbeat(sequence: 1, appliedRevision: 0, applying: 0)) && Self.registers(actions) == 0)
        _ = session.handle(.received([Self.snapshot(3, state: 3)], fromPublisher: false, at: 2.1))
        #expect(session.phase == .active && session.held == 3)
    }

    @Test func anAgentHeartbeatingSlowerThanTheCoordinatorExpectsSaysSo() {
        var session = Self.session()
        _ = session.handle(.tick(at: 0))
        let actions = session.handle(.received([Self.registerReply(heartbeatMs: 5000)], fromPublisher: false, at: 0.1))
        #expect(Self.logs(actions).contains { $0.contains("expects a heartbeat every 5.0 s, this agent sends one every 1.0 s") })
    }

    @Test func aRefusedHostAppliesNothingAndSaysSoOncePerReason() {
        var session = Self.session()
        _ = session.handle(.tick(at: 0))
        var actions = session.handle(.received([Self.registerReply(accepted: false, error: "mode differs")], fromPublisher: false, at: 0.1))
        #expect(session.phase == .refused && Self.logs(actions).contains("registration refused: mode differs"))
        _ = session.handle(.tick(at: 1))
        actions = session.handle(.received([Self.registerReply(accepted: false, error: "mode differs")], fromPublisher: false, at: 1.1))
        #expect(Self.logs(actions).isEmpty, "the same reason is not logged again")
        actions = session.handle(.received([Self.update(1, previous: 0, state: 1)], fromPublisher: true, at: 1.2))
        actions += session.handle(.received([Self.snapshot(1, state: 1)], fromPublisher: false, at: 1.3))
        #expect(Self.applies(actions).isEmpty && session.held == 0)
        _ = session.handle(.received([Self.registerReply()], fromPublisher: false, at: 2))
        #expect(session.phase == .syncing)
    }

    @Test func silenceKeepsTheHostAndRegistersAgainWhenTheCoordinatorIsBack() {
        var session = Self.active()
        var actions: [AgentSession.Action] = []
        for time in stride(from: 1.5, through: 4.6, by: 0.5) { actions += session.handle(.tick(at: time)) }
        #expect(session.phase == .coordinatorLost)
        #expect(Self.logs(actions).contains { $0.hasPrefix("coordinator silent") })
        #expect(Self.applies(actions).isEmpty && Self.records(actions).isEmpty, "silence changes nothing on the host")
        actions = session.handle(.tick(at: 5.6))
        #expect(Self.registers(actions) == 1, "registers again every interval while lost")
        actions = session.handle(.received([Self.heartbeatReply(desired: 5)], fromPublisher: true, at: 5.7))
        #expect(Self.logs(actions).contains("coordinator is back") && Self.registers(actions) == 1 && session.phase == .registering)
    }

    // MARK: applies

    @Test func updatesDuringALongApplyWaitInOneSlotAndTheNewestIsAppliedNext() {
        var session = Self.active()
        var actions = session.handle(.received([Self.update(6, previous: 5, state: 6)], fromPublisher: true, at: 2))
        let six = Self.applies(actions)
        #expect(six.map(\.revision) == [6] && session.inFlight?.revision == 6)
        // While 6 is applied, three more come, one by one; none is applied yet.
        actions = []
        for revision in UInt64(7)...9 {
            actions += session.handle(.received([Self.update(revision, previous: revision - 1, state: Int(revision))], fromPublisher: true, at: 2 + Double(revision) / 10))
        }
        #expect(Self.applies(actions).isEmpty && session.waiting?.revision == 9 && session.held == 9)
        #expect(Self.logs(actions).filter { $0.contains("superseded") }.count == 2, "7 and 8 are named superseded")
        // Heartbeats go on, saying what is being applied.
        actions = session.handle(.tick(at: 3))
        #expect(actions.contains(.heartbeat(sequence: 1, appliedRevision: 5, applying: 6)))
        // No reconcile, retry or host check while applying.
        actions = session.handle(.tick(at: 30))
        #expect(Self.applies(actions).isEmpty && !actions.contains(.checkHost))
        actions = session.handle(.applied(six[0], ApplyReport(operations: 2), seconds: 10, daemonDown: false, at: 31))
        #expect(Self.acknowledged(actions) == [6] && Self.records(actions).map(\.revision) == [6])
        #expect(Self.applies(actions).map(\.revision) == [9], "the newest waiting is applied next, the others never")
        #expect(Self.applies(actions).first?.state == Self.state(9))
    }

    @Test func aLateSnapshotOlderThanTheHeldRevisionIsNeverApplied() {
        var session = Self.active()
        _ = session.handle(.tick(at: 2))
        // The agent asked for a snapshot (revision 6 then), an update to 7 overtook the reply.
        var actions = session.handle(.received([Self.update(6, previous: 5, state: 6)], fromPublisher: true, at: 2.1))
        let six = Self.applies(actions)[0]
        _ = session.handle(.applied(six, ApplyReport(operations: 1), seconds: 0.1, daemonDown: false, at: 2.2))
        actions = session.handle(.received([Self.update(7, previous: 6, state: 7)], fromPublisher: true, at: 2.3))
        let seven = Self.applies(actions)[0]
        actions = session.handle(.received([Self.snapshot(6, state: 6)], fromPublisher: false, at: 2.4))
        #expect(Self.applies(actions).isEmpty && Self.logs(actions).contains { $0.contains("offers revision 6, older than the revision held (7)") })
        _ = session.handle(.applied(seven, ApplyReport(operations: 1), seconds: 0.1, daemonDown: false, at: 2.5))
        actions = session.handle(.received([Self.snapshot(6, state: 6)], fromPublisher: false, at: 2.6))
        #expect(Self.applies(actions).isEmpty && Self.logs(actions).isEmpty, "said once per revision")
        #expect(session.held == 7 && session.heldState == Self.state(7) && session.applied?.revision == 7)
        // A heartbeat reply naming an older revision asks for nothing either.
        actions = session.handle(.received([Self.heartbeatReply(desired: 4)], fromPublisher: false, at: 3))
        #expect(Self.snapshots(actions) == 0 && Self.applies(actions).isEmpty)
    }

    @Test func aGapOrANewerHeartbeatAsksForASnapshotAtMostOnceAnInterval() {
        var session = Self.active()
        var actions = session.handle(.received([Self.update(8, previous: 7, state: 8)], fromPublisher: true, at: 3))
        #expect(Self.snapshots(actions) == 1 && Self.applies(actions).isEmpty && Self.logs(actions).contains { $0.contains("missed an update") })
        actions = session.handle(.received([Self.heartbeatReply(desired: 8)], fromPublisher: false, at: 3.5))
        #expect(Self.snapshots(actions) == 0, "within the interval")
        actions = session.handle(.received([Self.heartbeatReply(desired: 8)], fromPublisher: false, at: 4.1))
        #expect(Self.snapshots(actions) == 1)
        actions = session.handle(.received([Self.snapshot(8, state: 8)], fromPublisher: false, at: 4.2))
        #expect(Self.applies(actions).map(\.revision) == [8])
        // A heartbeat reply naming the revision being applied asks for nothing.
        actions = session.handle(.received([Self.heartbeatReply(desired: 8)], fromPublisher: false, at: 6))
        #expect(Self.snapshots(actions) == 0)
    }

    @Test func aBurstCostsOneApplyAndUpdatesForOthersAreRefused() {
        var session = Self.active()
        let burst = [Self.update(6, previous: 5, state: 6), Self.update(7, previous: 6, state: 7), Self.update(3, previous: 2, state: 3, node: "n2"),
                     Self.update(8, previous: 7, state: 8)]
        let actions = session.handle(.received(burst, fromPublisher: true, at: 2))
        #expect(Self.applies(actions).map(\.revision) == [8])
        #expect(session.refusals.unauthorized == 1)
        _ = session.handle(.received([[0xff, 0x01, 0x02]], fromPublisher: false, at: 2.1))
        #expect(session.refusals.total == 1, "a malformed frame is counted, nothing else")
    }

    @Test func aCoordinatorRestartMidApplyReregistersAndTheSnapshotOfTheSameStateAppliesNothing() {
        var session = Self.active()
        var actions = session.handle(.received([Self.update(6, previous: 5, state: 6)], fromPublisher: true, at: 2))
        let six = Self.applies(actions)[0]
        actions = session.handle(.received([Self.heartbeatReply(desired: 6, epoch: 99)], fromPublisher: true, at: 2.5))
        #expect(Self.logs(actions).contains { $0.contains("coordinator restarted (epoch 99)") } && Self.registers(actions) == 1)
        #expect(session.phase == .registering)
        actions = session.handle(.applied(six, ApplyReport(operations: 4), seconds: 1, daemonDown: false, at: 3))
        #expect(Self.acknowledged(actions) == [6], "the apply's result goes to whichever coordinator is there")
        actions = session.handle(.received([Self.registerReply(epoch: 99)], fromPublisher: false, at: 3.1))
        #expect(Self.snapshots(actions) == 1)
        actions = session.handle(.received([Self.snapshot(6, state: 6, epoch: 99)], fromPublisher: false, at: 3.2))
        #expect(Self.applies(actions).isEmpty && Self.acknowledged(actions) == [6] && session.phase == .active)
    }

    @Test func aRestartedAgentTakesTheRevisionOfAStateItsHostHasWithoutApplying() {
        let digest = Self.message(4, previous: 0, state: 4).state.digest
        var session = Self.session(applied: AppliedRecord(revision: 4, digest: digest))
        #expect(session.held == 4)
        _ = session.handle(.tick(at: 0))
        _ = session.handle(.received([Self.registerReply()], fromPublisher: false, at: 0.1))
        // The coordinator moved on to revision 5 with the same state for this host (another host's change).
        let actions = session.handle(.received([Self.snapshot(5, state: 4)], fromPublisher: false, at: 0.2))
        #expect(Self.applies(actions).isEmpty && Self.records(actions) == [AppliedRecord(revision: 5, digest: digest)] && Self.acknowledged(actions) == [5])
        // A record of a state applied in part (digest 0) is applied again.
        var partial = Self.session(applied: AppliedRecord(revision: 4, digest: 0))
        _ = partial.handle(.tick(at: 0))
        _ = partial.handle(.received([Self.registerReply()], fromPublisher: false, at: 0.1))
        #expect(Self.applies(partial.handle(.received([Self.snapshot(4, state: 4)], fromPublisher: false, at: 0.2))).map(\.revision) == [4])
    }

    // MARK: failures, retries, reconcile, repair

    @Test func whatFailedIsRetriedWithBackOffAndTheRecordSaysPartial() {
        var session = Self.active()
        var actions = session.handle(.received([Self.update(6, previous: 5, state: 6)], fromPublisher: true, at: 2))
        let failed = ApplyReport(operations: 1, failures: [.init(.missing, object: "vif vnet3", error: "not on this host")])
        actions = session.handle(.applied(Self.applies(actions)[0], failed, seconds: 0.1, daemonDown: false, at: 2.1))
        #expect(Self.records(actions) == [AppliedRecord(revision: 6, digest: 0)])
        #expect(Self.logs(actions).contains { $0.hasPrefix("not applied: vif vnet3") })
        #expect(Self.applies(session.handle(.tick(at: 2.5))).isEmpty)
        var retry = Self.applies(session.handle(.tick(at: 2.7)))
        #expect(retry.map(\.trigger) == [.retry])
        actions = session.handle(.applied(retry[0], failed, seconds: 0.1, daemonDown: false, at: 2.8))
        #expect(Self.logs(actions).isEmpty && Self.acknowledged(actions).isEmpty, "the same failure is neither logged nor reported again")
        #expect(Self.applies(session.handle(.tick(at: 3.7))).isEmpty, "the delay doubled to 1 s")
        retry = Self.applies(session.handle(.tick(at: 3.9)))
        #expect(retry.map(\.trigger) == [.retry])
        actions = session.handle(.applied(retry[0], ApplyReport(operations: 1), seconds: 0.1, daemonDown: false, at: 4))
        #expect(Self.logs(actions).contains("every object of the held state is on the host now"))
        #expect(Self.records(actions).first?.digest != 0 && Self.acknowledged(actions) == [6] && session.isSettled)
    }

    @Test func theHeldStateIsReconciledEveryIntervalButNotDuringAKernelVerification() {
        var session = Self.session(canProbe: true)
        _ = session.handle(.tick(at: 0))
        _ = session.handle(.received([Self.registerReply()], fromPublisher: false, at: 0.1))
        let first = Self.applies(session.handle(.received([Self.snapshot(5, state: 5)], fromPublisher: false, at: 0.2)))[0]
        _ = session.handle(.applied(first, ApplyReport(operations: 3), seconds: 0.1, daemonDown: false, at: 1))
        let reconcile = Self.applies(session.handle(.tick(at: 10.1)))
        #expect(reconcile.map(\.trigger) == [.reconcile] && reconcile[0].state == Self.state(5))
        var actions = session.handle(.applied(reconcile[0], ApplyReport(operations: 2, drift: ["eth0.5 was deleted; made again"]), seconds: 0.1, daemonDown: false, at: 10.2))
        #expect(Self.logs(actions).contains { $0.hasPrefix("repaired drift with 2 operations") } && actions.contains(.sendInventory(drift: ["eth0.5 was deleted; made again"])))
        var command = Vnet_V1_ProbeCommand()
        command.probeID = "verify-1"; command.method = "kernel"; command.vlans = [10]; command.count = 3
        command.timeoutMs = 3000; command.listenMs = 500; command.peers = ["n1"]; command.peerMacs = [1]
        actions = session.handle(.received([Self.codec.encode(.probeCommand(command))], fromPublisher: false, at: 15))
        #expect(actions.contains(.startProbe(command)))
        #expect(Self.applies(session.handle(.tick(at: 20.5))).isEmpty, "no re-apply while the check's devices are on the host")
        actions = session.handle(.received([Self.codec.encode(.probeCommand(command))], fromPublisher: false, at: 21))
        #expect(actions.contains { if case .sendProbeReport(let report) = $0 { report.error.contains("already running") } else { false } })
        var report = Vnet_V1_ProbeReport()
        report.probeID = "verify-1"
        _ = session.handle(.probeFinished(report, at: 22))
        #expect(Self.applies(session.handle(.tick(at: 22.1))).map(\.trigger) == [.reconcile], "the overdue reconcile runs once the check is over")
    }

    @Test func aDeadDaemonIsRepairedAtOnceAndOneThatStaysDeadWaitsForTheReconcile() {
        var session = Self.active()
        var actions = session.handle(.tick(at: 1.5))
        #expect(actions.contains(.checkHost))
        #expect(!session.handle(.tick(at: 1.6)).contains(.checkHost), "one check at a time")
        actions = session.handle(.hostChecked(daemonDown: true, learnedChanged: false, at: 1.7))
        let repair = Self.applies(actions)
        #expect(repair.map(\.trigger) == [.repair])
        _ = session.handle(.applied(repair[0], ApplyReport(operations: 1, drift: ["dhcpd was not running; started it again"]), seconds: 0.1, daemonDown: true, at: 1.8))
        _ = session.handle(.tick(at: 2.0))
        actions = session.handle(.hostChecked(daemonDown: true, learnedChanged: true, at: 2.1))
        #expect(Self.applies(actions).isEmpty, "still dead after a repair: left to the reconcile and the retry of its failure")
        #expect(actions.contains(.sendInventory(drift: [])), "learned addresses are reported at once")
        // Without repair (reconcile interval 0) a dead daemon is only reported.
        var off = Self.session(reconcile: 0)
        _ = off.handle(.tick(at: 0))
        _ = off.handle(.received([Self.registerReply()], fromPublisher: false, at: 0.1))
        let job = Self.applies(off.handle(.received([Self.snapshot(5, state: 5)], fromPublisher: false, at: 0.2)))[0]
        _ = off.handle(.applied(job, ApplyReport(operations: 1), seconds: 0.1, daemonDown: false, at: 0.3))
        #expect(Self.applies(off.handle(.hostChecked(daemonDown: true, learnedChanged: false, at: 1))).isEmpty)
        #expect(Self.applies(off.handle(.tick(at: 100))).isEmpty, "and nothing is reconciled")
    }

    @Test func aCoordinatorRestartDuringAVerificationLeavesTheProbeRunningAndItsReportIsStillSent() {
        var session = Self.session(canProbe: true)
        _ = session.handle(.tick(at: 0))
        _ = session.handle(.received([Self.registerReply()], fromPublisher: false, at: 0.1))
        var command = Vnet_V1_ProbeCommand()
        command.probeID = "verify-77-1"; command.vlans = [10]; command.count = 3
        command.timeoutMs = 3000; command.listenMs = 500; command.peers = ["n1", "n2"]; command.peerMacs = [1, 2]
        var actions = session.handle(.received([Self.codec.encode(.probeCommand(command))], fromPublisher: false, at: 1))
        #expect(actions.contains(.startProbe(command)) && session.probe?.kernel == false)
        actions = session.handle(.received([Self.heartbeatReply(desired: 0, epoch: 99)], fromPublisher: true, at: 2))
        #expect(Self.registers(actions) == 1 && session.probe?.id == "verify-77-1", "re-registers; the probe is not abandoned")
        var report = Vnet_V1_ProbeReport()
        report.probeID = "verify-77-1"
        actions = session.handle(.probeFinished(report, at: 4))
        #expect(actions.contains(.sendProbeReport(report)) && session.probe == nil, "sent: the new coordinator drops a round it did not start")
        // A malformed command is refused and counted, and starts nothing.
        command.method = "carrier-pigeon"
        actions = session.handle(.received([Self.codec.encode(.probeCommand(command))], fromPublisher: false, at: 5))
        #expect(!actions.contains(.startProbe(command)) && session.refusals.total == 1)
    }

    @Test func aStateTheAgentCannotReadIsRefusedAndNotHeld() {
        var session = Self.active()
        var message = Self.message(6, previous: 0, state: 6)
        message.state.vlanDevices[0].vlan = 9999
        let actions = session.handle(.received([Self.codec.encode(.intent(message))], fromPublisher: false, at: 2))
        #expect(Self.applies(actions).isEmpty && session.held == 5)
        #expect(actions.contains { if case .acknowledge(6, 0, _, let failures) = $0 { failures.first?.kind == .refused } else { false } })
        #expect(session.refusals.total == 1)
    }
}
