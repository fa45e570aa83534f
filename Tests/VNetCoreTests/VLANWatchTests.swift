import Testing
@testable import VNetCore

@Suite("the continuous VLAN watch: rounds within the budget, hysteresis")
struct VLANWatchTests {
    @Test func roundsTakeTheVIDsInTurnWithinTheBudget() throws {
        var watch = VLANWatch(framesPerSecond: 500, hysteresis: 3, count: 2)
        #expect(watch.nextRound() == nil, "nothing to watch")
        watch.track(["n1": [10, 11], "n2": [10], "n3": []])
        #expect(watch.paths.map { "\($0.node)/\($0.vlan)" } == ["n1/0", "n2/0", "n3/0", "n1/10", "n2/10", "n1/11"],
                "each node untagged, and each VID it carries: a star around the front end")
        #expect(watch.nodesPerRound == 31, "500 frames/s over 16 frames a node (4 a probe's round trip each way, 2 probes, the VID and untagged)")
        var rounds: [VLANWatch.Round] = []
        for _ in 0..<6 { if let round = watch.nextRound() { rounds.append(round) } }
        #expect(rounds == [.init(vlan: 0, nodes: ["n3"]), .init(vlan: 10, nodes: ["n1", "n2"]), .init(vlan: 11, nodes: ["n1"]),
                           .init(vlan: 0, nodes: ["n3"]), .init(vlan: 10, nodes: ["n1", "n2"]), .init(vlan: 11, nodes: ["n1"])],
                "untagged for the node that carries no VID, then each VID in turn: \(rounds)")
        #expect(watch.spacing(.init(vlan: 10, nodes: ["n1", "n2"])) == 2 * 2 * 8 / 500.0, "its frames at the budget's rate")
        // A small budget: the nodes of a VID go in chunks.
        var small = VLANWatch(framesPerSecond: 32, hysteresis: 3, count: 2)
        small.track(["a": [], "b": [], "c": []])
        #expect(small.nodesPerRound == 2)
        #expect([small.nextRound(), small.nextRound(), small.nextRound()] == [.init(vlan: 0, nodes: ["a", "b"]), .init(vlan: 0, nodes: ["c"]), .init(vlan: 0, nodes: ["a", "b"])])
    }

    @Test func aPathChangesStateOnlyAfterConsecutiveResults() throws {
        var watch = VLANWatch(framesPerSecond: 500, hysteresis: 3)
        watch.track(["n1": [10], "n2": [10]])
        let path = VLANWatch.Path(node: "n2", vlan: 10)
        #expect(watch.record([path: true]).isEmpty && watch.record([path: true]).isEmpty)
        #expect(watch.record([path: true]).map(\.state) == [.up] && watch.states[path] == .up, "known after 3 results")
        #expect(watch.record([path: false]).isEmpty && watch.record([path: false]).isEmpty, "one or two failures are not an outage")
        #expect(watch.record([path: true]).isEmpty && watch.states[path] == .up, "a pass in between starts the count again")
        #expect(watch.record([path: false]).isEmpty && watch.record([path: nil]).isEmpty && watch.record([path: false]).isEmpty,
                "a round the node did not take part in says nothing")
        #expect(watch.record([path: false]).map(\.state) == [.down] && watch.states[path] == .down)
        #expect(watch.record([VLANWatch.Path(node: "n2", vlan: 99): false, VLANWatch.Path(node: "n9", vlan: 0): false]).isEmpty, "paths not watched are ignored")
        // n2 no longer carries VID 10: its path and state are forgotten.
        watch.track(["n1": [10], "n2": []])
        #expect(watch.states[path] == nil && !watch.paths.contains(path))
    }
}
