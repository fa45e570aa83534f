import Foundation
import Testing
@testable import VNetBus
import VNetAgent
@testable import VNetCoordinator
@testable import VNetCore
import VNetProto

@Suite("bus logic without sockets")
struct PureBusLogicTests {
    @Test(arguments: [
        (UInt64(5), UInt64(4), UInt64(4), SyncDecision.apply),
        (5, 3, 4, .requestSnapshot),     // 4 -> 5 was not the update we got: a gap
        (4, 3, 4, .ignore),              // duplicate
        (3, 2, 4, .ignore),              // old
        (9, 0, 0, .apply),               // first state of a new host
        (9, 7, 0, .requestSnapshot),     // a fresh agent joining late
    ])
    func updateDecisions(revision: UInt64, previous: UInt64, held: UInt64, expected: SyncDecision) {
        #expect(SyncDecision.forUpdate(revision: revision, previousRevision: previous, held: held) == expected)
    }

    /// Bring-up checks: VLANs that came up wait, go together in one run when no verification runs, are judged
    /// on each node's pair with the front end; a VLAN gone takes its result; a newer bring-up keeps its own.
    @Test func bringUpChecksQueueRunOnceAndAreJudgedOnEachNodesPairWithTheFrontEnd() throws {
        var queue = BringUpQueue()
        queue.committed(up: ["n1": [10], "n2": [10, 11]], current: ["n1": [10], "n2": [10, 11]], revision: 7)
        #expect(queue.results["n2"]?[11]?.state == .pending)
        #expect(queue.next(id: "b1", busy: true) == nil, "not while an operator's verification runs")
        let next = queue.next(id: "b1", busy: false)
        let run = try #require(next)
        #expect(run.nodes == ["n1", "n2"] && run.vlans == [10, 11])
        #expect(queue.next(id: "b2", busy: false) == nil, "one run at a time")
        queue.committed(up: ["n3": [12]], current: ["n3": [12]], revision: 8)
        let port = LLDPNeighbor(chassisID: "c", portID: "Eth1/2", ttl: 120, systemName: "sw1")
        let pairs: [VLANVerification.Pair] = [
            .init(a: "fe", b: "n1", vlan: 0, status: .ok), .init(a: "fe", b: "n1", vlan: 10, status: .ok),
            .init(a: "fe", b: "n2", vlan: 0, status: .ok), .init(a: "fe", b: "n2", vlan: 10, status: .ok),
            .init(a: "fe", b: "n2", vlan: 11, status: .failed), .init(a: "n1", b: "n2", vlan: 11, status: .failed),
        ]
        queue.finished(id: "b1", pairs: pairs, frontend: "fe", ports: ["n2": port])
        #expect(queue.results["n1"]?[10]?.state == .passed && queue.results["n2"]?[10]?.state == .passed)
        #expect(queue.results["n2"]?[11] == BringUpCheck.Result(node: "n2", vlan: 11, revision: 7, state: .failed,
                                                                detail: "applied on n2, but VID 11 does not pass between n2 and fe (n2's port sw1 Eth1/2 drops it?)"))
        #expect(queue.running == nil && queue.next(id: "b2", busy: false)?.nodes == ["n3"], "what came meanwhile runs next")
        queue.skip("n3", reason: "not checked: n3 was DOWN when the VLAN came up")
        #expect(queue.results["n3"]?[12]?.state == .skipped)
        queue.finished(id: "b2", pairs: [], frontend: "fe", ports: [:])
        #expect(queue.results["n3"]?[12]?.state == .skipped, "skipped stays skipped")
        // n2's VLAN 11 went down with its last instance: its result goes; n1 (not changed) keeps its own.
        queue.committed(up: [:], current: ["n2": [10]], revision: 9)
        #expect(queue.results["n2"]?[11] == nil && queue.results["n2"]?[10]?.state == .passed && queue.results["n1"]?[10]?.state == .passed)
        // Down and up again while a check of the older bring-up runs: the newer one is not overwritten by it.
        queue.committed(up: ["n1": [20]], current: ["n1": [10, 20]], revision: 10)
        _ = queue.next(id: "b3", busy: false)
        queue.committed(up: [:], current: ["n1": [10]], revision: 11)
        queue.committed(up: ["n1": [20]], current: ["n1": [10, 20]], revision: 12)
        queue.finished(id: "b3", pairs: [.init(a: "fe", b: "n1", vlan: 20, status: .ok), .init(a: "fe", b: "n1", vlan: 0, status: .ok)], frontend: "fe", ports: [:])
        #expect(queue.results["n1"]?[20] == BringUpCheck.Result(node: "n1", vlan: 20, revision: 12, state: .pending))
        // The words for the other outcomes.
        #expect(BringUpCheck.judge(node: "n2", frontend: "fe", vlan: 11, status: .failed, control: .failed).1
                == "applied on n2, but nothing passes between n2 and fe, untagged either: a link problem, not VID 11")
        #expect(BringUpCheck.judge(node: "n2", frontend: "fe", vlan: 11, status: .oneWay(from: "fe", to: "n2"), control: .ok).1
                == "applied on n2, but VID 11 passes only from fe to n2 (n2's port or its NIC drops it one way?)")
        #expect(BringUpCheck.judge(node: "n2", frontend: "fe", vlan: 11, status: .unreachable("fe"), control: nil).0 == .skipped)
    }

    @Test func verifyVLANRangeCoversTheRangeAsFarAsTheSubnetReachesAndNamesThePiecesOfAWideOne() throws {
        func managed(_ range: String?, mode: String = "MANAGED") throws -> VNetConfig {
            var text = "VNET_MODE=\"\(mode)\"\nVNET_INTERFACE=\"eth0\"\nVNET_DHCPDAEMON=\"/usr/sbin/dhcpd\"\nVNET_SUBNET=\"10.20.0.0\"\nVNET_NETMASK=\"255.255.0.0\"\nVNET_DNS=\"192.0.2.53\"\nVNET_ADDRSPERNET=\"64\"\n"
            if let range { text += "VNET_VLANRANGE=\"\(range)\"\n" }
            return try #require(ConfigValidator.validate(text: text, role: .frontend).config)
        }
        #expect(try Coordinator.rangeVLANs(managed("10-12")).get() == [10, 11, 12])
        // 10.20.0.0/16 in 64s reaches VID 1025.
        #expect(try Coordinator.rangeVLANs(managed("1000-1100")).get() == Array(1000...1025))
        // The default range here is VIDs 10-1025: 1016, over one verification's 512.
        guard case .failure(let wide) = Coordinator.rangeVLANs(try managed(nil)) else { Issue.record("1016 VIDs accepted"); return }
        #expect(wide.message.contains("VIDs 10-1025 (1016)") && wide.message.contains("--vlans 10-521; --vlans 522-1025"), "\(wide.message)")
        guard case .failure(let novlan) = Coordinator.rangeVLANs(try managed("10-12", mode: "MANAGED-NOVLAN")) else { Issue.record("NOVLAN verified"); return }
        #expect(novlan.message.contains("not in MANAGED mode"))
        // A narrowed range: the stored group on VID 10 is named when the coordinator starts.
        var allocator = try Allocator(config: try managed(nil), state: ClusterState(frontend: "fe"))
        try allocator.createGroup(GroupID(user: "admin", name: "web"))
        #expect(Coordinator.outsideRangeWarning(allocator) == nil)
        let narrowed = try Allocator(config: try managed("20-30"), state: allocator.state)
        #expect(Coordinator.outsideRangeWarning(narrowed)?.contains("admin/web (VID 10)") == true, "\(Coordinator.outsideRangeWarning(narrowed) ?? "none")")
    }

    @Test func aBurstOfUpdatesIsAppliedOnceAsIfTakenOneByOne() {
        func run(_ updates: [(UInt64, UInt64)?], held: UInt64) -> (Int?, UInt64?) {
            let decision = SyncDecision.coalesce(updates.map { $0.map { (revision: $0.0, previous: $0.1) } }, held: held)
            return (decision.apply, decision.gap?.revision)
        }
        // 5 -> 6 -> 7 -> 8 with a heartbeat (nil) between: only 8 is applied.
        #expect(run([(6, 5), nil, (7, 6), (8, 7)], held: 5) == (3, nil))
        // An old duplicate first, then the chain from what is held.
        #expect(run([(5, 4), (6, 5), (7, 6)], held: 5) == (2, nil))
        // A gap after the chain: apply what follows, and ask for a snapshot.
        #expect(run([(6, 5), (9, 8)], held: 5) == (0, 9))
        // Nothing new.
        #expect(run([(4, 3), nil], held: 5) == (nil, nil))
        // A gap first: nothing applicable until the snapshot.
        #expect(run([(7, 6), (8, 7)], held: 5) == (nil, 7))
    }

    @Test func aCoordinatorOnPortZeroAsksForThePortsItHadFirst() {
        #expect(BusEndpoints.reusing("tcp://127.0.0.1:*", previous: "tcp://127.0.0.1:41234") == "tcp://127.0.0.1:41234")
        #expect(BusEndpoints.reusing("tcp://0.0.0.0:*", previous: "tcp://127.0.0.1:41234") == "tcp://0.0.0.0:41234", "the host asked for, the old port")
        #expect(BusEndpoints.reusing("tcp://127.0.0.1:7460", previous: "tcp://127.0.0.1:41234") == "tcp://127.0.0.1:7460", "a port given is kept")
        #expect(BusEndpoints.reusing("tcp://127.0.0.1:*", previous: nil) == "tcp://127.0.0.1:*")
        #expect(BusEndpoints.reusing("tcp://127.0.0.1:*", previous: "tcp://127.0.0.1:0") == "tcp://127.0.0.1:*")
        #expect(BusEndpoints.reusing("tcp://127.0.0.1:*", previous: "ipc:///run/x") == "tcp://127.0.0.1:*")
    }

    @Test func heartbeatDecisions() {
        #expect(SyncDecision.forHeartbeat(desired: 7, held: 7) == .ignore)
        #expect(SyncDecision.forHeartbeat(desired: 8, held: 7) == .requestSnapshot)
        #expect(SyncDecision.forHeartbeat(desired: 3, held: 7) == .stale)  // never gone back to (a late reply, a restored database)
    }

    @Test func livenessStates() {
        var liveness = Liveness(interval: 1, suspectAfter: 2, downAfter: 3)
        #expect(liveness.state(of: "n1", at: 0) == .new)
        liveness.heard("n1", at: 10)
        #expect(liveness.state(of: "n1", at: 11.9) == .up)
        #expect(liveness.state(of: "n1", at: 12.0) == .suspect)
        #expect(liveness.state(of: "n1", at: 12.9) == .suspect)
        #expect(liveness.state(of: "n1", at: 13.0) == .down)
        #expect(liveness.transitions(at: 13.0, nodes: ["n1", "n2"]).map(\.1) == [.down])
        #expect(liveness.transitions(at: 13.5, nodes: ["n1", "n2"]).isEmpty)
        liveness.heard("n1", at: 14)
        #expect(liveness.transitions(at: 14, nodes: ["n1"]).map(\.1) == [.up])
        var fast = Liveness(interval: 0.1)
        fast.heard("n", at: 0)
        #expect(fast.state(of: "n", at: 0.31) == .down)
    }

    func handler() throws -> (ControlHandler, Allocator) {
        let text = "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\nVNET_DHCPDAEMON=\"/usr/sbin/dhcpd\"\nVNET_SUBNET=\"10.20.0.0\"\nVNET_NETMASK=\"255.255.0.0\"\nVNET_DNS=\"192.0.2.53\"\nVNET_ADDRSPERNET=\"64\"\nVNET_PUBLICIPS=\"203.0.113.10\"\n"
        let config = try #require(ConfigValidator.validate(text: text, role: .frontend).config)
        var allocator = try Allocator(config: config, state: ClusterState(frontend: "fe"))
        try allocator.addNode(.init(name: "n1", interface: "eth0", bridge: "br0"))
        return (ControlHandler(config: config), allocator)
    }

    func run(_ id: String, publicIP: String = "", group: String = "") -> Vnet_V1_ControlRequest {
        var run = Vnet_V1_RunInstance()
        run.instanceID = id; run.node = "n1"; run.publicIp = publicIP; run.group = group
        var request = Vnet_V1_ControlRequest()
        request.op = .runInstance(run)
        return request
    }

    @Test func defaultGroupIsMadeOnFirstUse() throws {
        var (handler, allocator) = try handler()
        let (reply, changed) = handler.handle(run("i-00000001"), &allocator, view: .init())
        #expect(reply.ok && changed)
        #expect(reply.instances.first?.group == "admin/default")
        #expect(allocator.state.groups[GroupID(user: "admin", name: "default")] != nil)
    }

    @Test func aFailedStepUndoesTheEarlierOnes() throws {
        var (handler, allocator) = try handler()
        _ = handler.handle(run("i-00000001", publicIP: "auto"), &allocator, view: .init())
        let before = allocator.state
        // The only public IP is taken: the instance and the default group it would have made are undone.
        let (reply, changed) = handler.handle(run("i-00000002", publicIP: "auto", group: ""), &allocator, view: .init())
        #expect(!reply.ok && !changed)
        #expect(reply.error.contains("no free public IP"))
        #expect(allocator.state == before)
        var fresh = try self.handler().1
        let empty = fresh.state
        let (second, _) = handler.handle(run("i-00000003", publicIP: "198.51.100.1"), &fresh, view: .init())
        #expect(!second.ok)
        #expect(fresh.state == empty, "the default group made for it is removed again")
    }
}

@Suite("log line format")
struct LogLineFormatTests {
    @Test func textPutsNodeAndRevisionFirstAndQuotesWhatNeedsIt() {
        let line = LineLogHandler.format(time: "T", level: .warning, component: "agent", message: "repaired drift",
                                         metadata: ["zone": "a b", "revision": "12", "node": "n1"], as: .text)
        #expect(line == "T warning agent: repaired drift node=n1 revision=12 zone=\"a b\"")
    }

    @Test func jsonIsOneObjectPerLineThatParses() throws {
        let line = LineLogHandler.format(time: "T", level: .info, component: "coordinator", message: "a \"quoted\"\nline\twith\u{1} control",
                                         metadata: ["node": "n1"], as: .json)
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object == ["ts": "T", "level": "info", "component": "coordinator", "msg": "a \"quoted\"\nline\twith\u{1} control", "node": "n1"])
    }

    @Test func theSinkKeepsTheLastLinesInOrder() {
        let sink = LogSink()
        for index in 0..<(sink.keep + 5) { sink.record("line \(index)") }
        let tail = sink.tail
        #expect(tail.count == sink.keep)
        #expect(tail.first == "line 5" && tail.last == "line \(sink.keep + 4)")
    }
}
