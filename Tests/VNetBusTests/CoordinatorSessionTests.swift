import Testing
@testable import VNetCoordinator
import VNetCore
import VNetProto

/// The coordinator's side of the agents' protocol, event by event, with made-up times and keys: admission,
/// liveness, heartbeat replies, snapshots, apply results, and the operation rounds with their deadlines.
@Suite("Coordinator session (the agents' protocol at the coordinator, as a value)")
struct CoordinatorSessionTests {
    static let route: [[UInt8]] = [[1, 2, 3]]

    static func session(authenticated: Bool = true) -> CoordinatorSession {
        var session = CoordinatorSession(settings: .init(epoch: 9, mode: .managed, frontend: "fe", authenticated: authenticated, heartbeatInterval: 1))
        session.committed(desired: ["n1": 4, "fe": 3], cluster: 4)
        return session
    }

    static func register(_ node: String, mode: NetworkMode = .managed, role: HostRole = .node) -> Vnet_V1_Envelope.OneOf_Body {
        var register = Vnet_V1_Register()
        register.nodeID = node
        register.mode = mode.wire
        register.role = role.wire
        register.mac = 0x5254_0000_0001
        return .register(register)
    }

    static func heartbeat(_ node: String, applied: UInt64 = 0, applying: UInt64 = 0) -> Vnet_V1_Envelope.OneOf_Body {
        var heartbeat = Vnet_V1_AgentHeartbeat()
        heartbeat.nodeID = node
        heartbeat.appliedRevision = applied
        heartbeat.applyingRevision = applying
        return .agentHeartbeat(heartbeat)
    }

    static func from(_ user: String?, _ body: Vnet_V1_Envelope.OneOf_Body, at time: Double) -> CoordinatorSession.Event {
        .received(body, prefix: route, user: user, peer: "127.0.0.1", at: time)
    }

    static func logs(_ actions: [CoordinatorSession.Action]) -> [String] {
        actions.compactMap { if case .log(_, let text, _) = $0 { text } else { nil } }
    }
    static func replies(_ actions: [CoordinatorSession.Action]) -> [Vnet_V1_Envelope.OneOf_Body] {
        actions.compactMap { if case .reply(_, let body) = $0 { body } else { nil } }
    }
    static func registrations(_ actions: [CoordinatorSession.Action]) -> Int {
        actions.filter { if case .register = $0 { true } else { false } }.count
    }
    static func answers(_ actions: [CoordinatorSession.Action]) -> [Vnet_V1_ControlReply] {
        actions.compactMap { if case .answer(_, let reply) = $0 { reply } else { nil } }
    }

    @Test func aHostOfAnotherModeOrRoleIsRefusedOncePerReasonAndNotHeard() {
        var session = Self.session()
        var actions = session.handle(Self.from("n1", Self.register("n1", mode: .managedNoVLAN), at: 0))
        #expect(Self.registrations(actions) == 0 && Self.logs(actions).first?.contains("VNET_MODE=MANAGED-NOVLAN") == true)
        guard case .registerReply(let reply)? = Self.replies(actions).first else { Issue.record("no refusal"); return }
        #expect(!reply.accepted && reply.epoch == 9)
        actions = session.handle(Self.from("n1", Self.register("n1", mode: .managedNoVLAN), at: 1))
        #expect(Self.logs(actions).isEmpty, "the same reason is logged once")
        #expect(session.liveness.state(of: "n1", at: 1) == .new, "a refused host is not UP")
        actions = session.handle(Self.from("fe", Self.register("fe", role: .node), at: 1))
        #expect(Self.logs(actions).first?.contains("start it with --role frontend") == true)
        actions = session.handle(Self.from("n1", Self.register("n1"), at: 2))
        #expect(Self.registrations(actions) == 1 && session.routes["n1"] == Self.route && session.interfaceMACs["n1"] == 0x5254_0000_0001)
        #expect(session.liveness.state(of: "n1", at: 2) == .up)
    }

    @Test func aKeySpeaksOnlyForItsNode() {
        var session = Self.session()
        let actions = session.handle(Self.from("n2", Self.heartbeat("n1"), at: 0))
        #expect(Self.replies(actions).isEmpty && session.refusals.unauthorized == 1)
        #expect(Self.logs(actions).first?.contains("claiming to be node 'n1' from key of 'n2'") == true)
        var open = Self.session(authenticated: false)  // --insecure: whoever connects is believed
        #expect(Self.replies(open.handle(Self.from(nil, Self.heartbeat("n1"), at: 0))).count == 1)
    }

    @Test func heartbeatsAreAnsweredWithTheDesiredRevisionAndLivenessFollowsTheirAges() {
        var session = Self.session()
        var actions = session.handle(Self.from("n1", Self.heartbeat("n1", applied: 3, applying: 4), at: 0))
        guard case .coordinatorHeartbeat(let reply)? = Self.replies(actions).first else { Issue.record("no reply"); return }
        #expect(reply.desiredRevision == 4 && reply.clusterRevision == 4 && reply.epoch == 9)
        #expect(session.applied["n1"] == 3 && session.applying["n1"] == 4)
        session.committed(desired: ["n1": 6, "fe": 3], cluster: 6)
        actions = session.handle(Self.from("n1", Self.heartbeat("n1", applied: 4), at: 0.5))
        guard case .coordinatorHeartbeat(let newer)? = Self.replies(actions).first else { Issue.record("no reply"); return }
        #expect(newer.desiredRevision == 6 && session.applying["n1"] == 0)
        var seen: [String] = []
        for time in [1.0, 2.0, 2.6, 3.6] { seen += Self.logs(session.handle(.tick(at: time, hosts: ["fe", "n1"]))) }
        #expect(seen == ["node n1 is UP", "node n1 is SUSPECT", "node n1 is DOWN"], "\(seen)")
        #expect(Self.logs(session.handle(.tick(at: 4, hosts: ["fe", "n1"]))).isEmpty, "each transition once")
        seen = Self.logs(session.handle(Self.from("n1", Self.heartbeat("n1"), at: 5)) + session.handle(.tick(at: 5.1, hosts: ["fe", "n1"])))
        #expect(seen == ["node n1 is UP"])
    }

    @Test func snapshotsAreServedForHostsWithAStateOnly() {
        var session = Self.session()
        var request = Vnet_V1_SnapshotRequest()
        request.nodeID = "n1"
        var actions = session.handle(Self.from("n1", .snapshotRequest(request), at: 0))
        #expect(actions.contains { if case .sendSnapshot(_, "n1") = $0 { true } else { false } })
        request.nodeID = "n7"
        actions = session.handle(Self.from("n7", .snapshotRequest(request), at: 0))
        guard case .registerReply(let reply)? = Self.replies(actions).first else { Issue.record("no refusal"); return }
        #expect(!reply.accepted && reply.error.contains("not registered"))
    }

    @Test func applyResultsAreCountedAlwaysAndLoggedWhenTheirCauseChanges() {
        var session = Self.session()
        var result = Vnet_V1_ApplyResult()
        result.nodeID = "n1"; result.revision = 4; result.ok = false; result.errors = ["vif vnet3: missing: not on this host"]
        result.failures = [ApplyReport.Failure(.missing, object: "vif vnet3", error: "not on this host").wire]
        var actions = session.handle(Self.from("n1", .applyResult(result), at: 0))
        #expect(Self.logs(actions).first?.contains("applied except: vif vnet3") == true)
        #expect(actions.contains { if case .count("vnet_apply_failures_total", _) = $0 { true } else { false } })
        actions = session.handle(Self.from("n1", .applyResult(result), at: 1))
        #expect(Self.logs(actions).isEmpty && actions.count == 2, "counted (and its duration kept), not logged again")
        result.ok = true; result.errors = []; result.failures = []
        actions = session.handle(Self.from("n1", .applyResult(result), at: 2))
        #expect(Self.logs(actions) == ["node n1 revision 4: every object applied now"] && session.applied["n1"] == 4)
    }

    @Test func aVerificationIsAnsweredWhenEveryReportIsInOrAtItsDeadlineAndReportsOfOtherRoundsAreDropped() {
        var session = Self.session()
        for node in ["n1", "n2"] { _ = session.handle(Self.from(node, Self.register(node), at: 0)) }
        let run = VLANVerificationRun(id: "verify-9-1", replyPrefix: [[7]], requestID: "r1", vlans: [10], hosts: ["n1", "n2", "n3"], control: true,
                                      unreachable: ["n3"], deadline: 5)
        var command = Vnet_V1_ProbeCommand()
        command.probeID = run.id
        let started = session.start(run, command)
        #expect(Self.replies(started).count == 2, "both reachable participants are told to probe")
        func report(_ node: String, id: String = "verify-9-1") -> Vnet_V1_Envelope.OneOf_Body {
            var report = Vnet_V1_ProbeReport()
            report.probeID = id; report.nodeID = node
            return .probeReport(report)
        }
        _ = session.handle(Self.from("n1", report("n1"), at: 1))
        // A report of a round started by a coordinator before a restart (another epoch's id) changes nothing.
        _ = session.handle(Self.from("n2", report("n2", id: "verify-3-1"), at: 1.5))
        #expect(Self.answers(session.handle(.tick(at: 2, hosts: ["fe", "n1", "n2"]))).isEmpty)
        _ = session.handle(Self.from("n2", report("n2"), at: 2.5))
        let answers = Self.answers(session.handle(.tick(at: 2.6, hosts: ["fe", "n1", "n2"])))
        #expect(answers.count == 1 && answers.first?.verification.unreachable == ["n3"])
        #expect(Self.answers(session.handle(.tick(at: 2.7, hosts: ["fe", "n1", "n2"]))).isEmpty, "answered once")
        // A round whose participant never reports is answered at its deadline, the silent host unreachable.
        _ = session.start(VLANVerificationRun(id: "verify-9-2", replyPrefix: [[7]], requestID: "r2", vlans: [10], hosts: ["n1", "n2"], control: true,
                                              unreachable: [], deadline: 8), command)
        _ = session.handle(Self.from("n1", report("n1", id: "verify-9-2"), at: 3))
        #expect(Self.answers(session.handle(.tick(at: 7.9, hosts: ["fe", "n1", "n2"]))).isEmpty)
        let late = session.handle(.tick(at: 8.1, hosts: ["fe", "n1", "n2"]))
        #expect(Self.answers(late).first?.verification.unreachable == ["n2"] && Self.logs(late).contains { $0.contains("no report in time from n2") })
    }

    @Test func aDiagnosisAsksTheHostsItCanReachAndFinishesAtItsDeadline() {
        var session = Self.session()
        _ = session.handle(Self.from("n1", Self.register("n1"), at: 0))
        let (asked, actions) = session.startDiagnosis(id: "diagnose-9-1", prefix: [[7]], requestID: "r", hosts: ["fe", "n1", "n2"], timeout: 5, at: 0.5)
        #expect(asked == 1 && Self.replies(actions).count == 1, "only n1 is UP with a route")
        #expect(!session.handle(.tick(at: 4, hosts: ["fe", "n1", "n2"])).contains { if case .finishDiagnosis = $0 { true } else { false } })
        let finished = session.handle(.tick(at: 5.6, hosts: ["fe", "n1", "n2"]))
        #expect(finished.contains { if case .finishDiagnosis(let run) = $0 { run.id == "diagnose-9-1" && run.reports.isEmpty } else { false } })
    }
}
