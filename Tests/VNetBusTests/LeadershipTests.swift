import Testing
import VNetAgent
import VNetBus
import VNetCoordinator
import VNetProto
import VNetStore

/// Who leads, as values with made-up times: the coordinator's lease (Leadership) and the agent's choice of
/// whom to follow (AgentSession with several coordinators).
@Suite("Leadership: the lease and whom agents follow")
struct LeadershipTests {
    static func lease(_ epoch: UInt64, holder: String, control: String = "", remaining: Double = 3) -> Lease {
        Lease(epoch: epoch, holder: holder, control: control, remaining: remaining)
    }

    @Test func aStandbyTakesTheLeaseAndBelievesItLessLongThanTheStoreHoldsIt() {
        var leadership = Leadership(settings: .init(lease: 3), holder: "me")
        #expect(leadership.handle(.tick(at: 10)) == [.acquire])
        #expect(leadership.handle(.tick(at: 10.1)).isEmpty, "one request at a time")
        let actions = leadership.handle(.acquired(Self.lease(4, holder: "me"), sentAt: 10, at: 10.05))
        #expect(actions == [.becomeActive(epoch: 4)])
        #expect(leadership.leads(at: 12.6) && !leadership.leads(at: 12.71), "believed until sent + 3 s - 10%, before the store's 13 s")
        // Renewed every second; an answered renewal moves the belief on from when it was sent.
        #expect(leadership.handle(.tick(at: 10.5)).isEmpty)
        #expect(leadership.handle(.tick(at: 11.05)) == [.renew(epoch: 4)])
        _ = leadership.handle(.renewed(true, sentAt: 11.05, at: 11.1))
        #expect(leadership.leads(at: 13.7) && !leadership.leads(at: 13.8))
        #expect(leadership.renewals == 1 && leadership.failovers == 1)
    }

    @Test func unansweredRenewalsStepDownBeforeAnyStandbyCanTakeOver() {
        var leadership = Leadership(settings: .init(lease: 3), holder: "me")
        _ = leadership.handle(.tick(at: 0))
        _ = leadership.handle(.acquired(Self.lease(1, holder: "me"), sentAt: 0, at: 0.01))
        _ = leadership.handle(.tick(at: 1.01))
        var actions = leadership.handle(.storeFailed("PostgreSQL at postgresql://v@db:5432/v did not answer within 2 s", at: 3.01))
        #expect(actions.contains(.log("the store did not answer: PostgreSQL at postgresql://v@db:5432/v did not answer within 2 s", warning: true)))
        #expect(leadership.role == .active && !leadership.leads(at: 2.71))
        actions = leadership.handle(.tick(at: 2.75))
        #expect(actions.contains { if case .becomeStandby(let reason) = $0 { reason.contains("not renewed in time") } else { false } })
        #expect(leadership.role == .standby)
        // Back: the lease lapsed in the store and another took it.
        actions = leadership.handle(.tick(at: 3.6))
        #expect(actions == [.acquire])
        actions = leadership.handle(.acquired(Self.lease(2, holder: "other", control: "tcp://10.0.0.2:7462"), sentAt: 3.6, at: 3.61))
        #expect(actions == [.log("the store answers again", warning: false)])
        #expect(leadership.standbyReason.contains("tcp://10.0.0.2:7462 (epoch 2)"))
    }

    @Test func aLeaseTakenOrRelinquishedStepsDownAndALowerEpochIsNeverTakenBack() {
        var leadership = Leadership(settings: .init(lease: 3), holder: "me")
        _ = leadership.handle(.tick(at: 0))
        _ = leadership.handle(.acquired(Self.lease(5, holder: "me"), sentAt: 0, at: 0))
        _ = leadership.handle(.tick(at: 1))
        #expect(leadership.handle(.renewed(false, sentAt: 1, at: 1.01)) == [.becomeStandby(reason: "the lease of epoch 5 was taken by another coordinator")])
        // A stale answer naming this holder at an epoch not above the one it led under changes nothing.
        _ = leadership.handle(.tick(at: 2))
        #expect(leadership.handle(.acquired(Self.lease(5, holder: "me"), sentAt: 2, at: 2)).isEmpty)
        #expect(leadership.role == .standby)
        // Relinquished (a commit of unknown outcome): down at once, and asked again at once, under a new epoch.
        _ = leadership.handle(.tick(at: 3))
        _ = leadership.handle(.acquired(Self.lease(7, holder: "me"), sentAt: 3, at: 3))
        #expect(leadership.handle(.relinquish("a commit's outcome is unknown", at: 3.2)) == [.becomeStandby(reason: "a commit's outcome is unknown")])
        #expect(leadership.handle(.tick(at: 3.2)) == [.acquire])
        #expect(leadership.handle(.acquired(Self.lease(8, holder: "me"), sentAt: 3.2, at: 3.21)) == [.becomeActive(epoch: 8)])
        #expect(leadership.failovers == 3)
    }

    // MARK: agents

    static let codec = EnvelopeCodec(clusterID: "vnet")

    static func heartbeat(epoch: UInt64, standby: Bool = false) -> [UInt8] {
        var heartbeat = Vnet_V1_CoordinatorHeartbeat()
        heartbeat.epoch = epoch
        heartbeat.standby = standby
        return codec.encode(.coordinatorHeartbeat(heartbeat))
    }

    static func registers(_ actions: [AgentSession.Action]) -> Int { actions.filter { if case .register = $0 { true } else { false } }.count }
    static func applies(_ actions: [AgentSession.Action]) -> [AgentSession.ApplyJob] { AgentSessionTests.applies(actions) }

    @Test func anAgentFollowsTheActiveCoordinatorOfTheHighestEpochAndNeverALowerOne() {
        var settings = AgentSession.Settings(nodeID: "n1", heartbeatInterval: 1, reconcileInterval: 0)
        settings.coordinators = 2
        var session = AgentSession(settings: settings, applied: nil, at: 0)
        // Nobody leads yet: no registration goes anywhere.
        #expect(Self.registers(session.handle(.tick(at: 0))) == 0)
        #expect(session.following == nil)
        // #1 stands by, #2 leads under epoch 77.
        #expect(session.handle(.received([Self.heartbeat(epoch: 0, standby: true)], fromPublisher: true, source: 0, at: 0.1)).isEmpty)
        var actions = session.handle(.received([Self.heartbeat(epoch: 77)], fromPublisher: true, source: 1, at: 0.2))
        #expect(session.following == 1 && Self.registers(actions) == 1)
        _ = session.handle(.received([AgentSessionTests.registerReply(epoch: 77)], fromPublisher: false, source: 1, at: 0.3))
        actions = session.handle(.received([AgentSessionTests.snapshot(5, state: 5)], fromPublisher: false, source: 1, at: 0.4))
        let job = Self.applies(actions)[0]
        actions = session.handle(.applied(job, .init(operations: 2), seconds: 0.1, daemonDown: false, at: 0.5))
        #expect(session.applied?.revision == 5)

        // #1 (deposed, or stale) claims to lead under a lower epoch, and publishes: neither is followed.
        actions = session.handle(.received([Self.heartbeat(epoch: 76)], fromPublisher: true, source: 0, at: 1))
        #expect(session.following == 1 && Self.registers(actions) == 0)
        #expect(AgentSessionTests.logs(actions).contains { $0.contains("epoch 76, older than the epoch followed (77): not followed") })
        actions = session.handle(.received([AgentSessionTests.update(6, previous: 5, state: 6, epoch: 76)], fromPublisher: true, source: 0, at: 1.1))
        #expect(Self.applies(actions).isEmpty && session.held == 5)
        // A reply on #1's socket is not the followed coordinator's.
        actions = session.handle(.received([AgentSessionTests.snapshot(9, state: 9, epoch: 76)], fromPublisher: false, source: 0, at: 1.2))
        #expect(Self.applies(actions).isEmpty)

        // #1 takes over under epoch 78: followed, and its snapshot of the state held applies nothing.
        actions = session.handle(.received([Self.heartbeat(epoch: 78)], fromPublisher: true, source: 0, at: 2))
        #expect(session.following == 0 && session.epoch == 78 && Self.registers(actions) == 1)
        #expect(AgentSessionTests.logs(actions).contains("following coordinator #1, leading under epoch 78; registering and resynchronising"))
        _ = session.handle(.received([AgentSessionTests.registerReply(epoch: 78)], fromPublisher: false, source: 0, at: 2.1))
        actions = session.handle(.received([AgentSessionTests.snapshot(5, state: 5, epoch: 78)], fromPublisher: false, source: 0, at: 2.2))
        #expect(Self.applies(actions).isEmpty, "the state held: nothing re-applied")
        #expect(actions.contains(.acknowledge(revision: 5, operations: 0, seconds: 0, failures: [])))
        // Only the coordinator followed is listened to, whatever epoch another's frames carry.
        actions = session.handle(.received([AgentSessionTests.update(6, previous: 5, state: 6, epoch: 78)], fromPublisher: true, source: 1, at: 2.3))
        #expect(Self.applies(actions).isEmpty && session.held == 5)
        // #2, still claiming 77, is never gone back to.
        actions = session.handle(.received([Self.heartbeat(epoch: 77)], fromPublisher: true, source: 1, at: 3))
        #expect(session.following == 0 && Self.registers(actions) == 0)

        // #1 steps down: the host is kept, nothing is sent until a leader is heard.
        actions = session.handle(.received([Self.heartbeat(epoch: 78, standby: true)], fromPublisher: true, source: 0, at: 4))
        #expect(session.following == nil && session.phase == .coordinatorLost)
        #expect(AgentSessionTests.logs(actions).contains { $0.contains("stepped down from epoch 78") })
        #expect(Self.registers(session.handle(.tick(at: 6))) == 0)
        #expect(session.heldState != nil && session.applied?.revision == 5)
    }
}
