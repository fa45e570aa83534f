import Foundation
import Testing
import VNetLinux

/// The bring-up benchmark is a program operators and reviewers run: it must work, clean up after itself and
/// say what it measured. Its figures are not judged here (benchmarks are for that); a tiny run proves the path.
@Suite("vnet-bench bringup", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct BringUpBenchmarkTests {
    struct Figures: Decodable {
        var nodes: Int, instances: Int
        var toAppliedSeconds: Double, toReachableSeconds: Double
        var frontEndApplies: Int
        var baselineToAppliedSeconds: Double?
    }

    @Test func aSmallBringUpRunsReportsAndLeavesNothingBehind() throws {
        let bench = NamespaceFixtures.binaries.appendingPathComponent("vnet-bench").path
        let output = try ProcessRunner().run([bench, "bringup", "--nodes", "2", "--instances", "3", "--groups", "2", "--json"], input: nil)
        let figures = try JSONDecoder().decode(Figures.self, from: Data(output))
        #expect(figures.nodes == 2 && figures.instances == 6)
        #expect(figures.toAppliedSeconds > 0 && figures.toReachableSeconds >= figures.toAppliedSeconds)
        #expect(figures.frontEndApplies >= 1)
        #expect((figures.baselineToAppliedSeconds ?? 0) > 0)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns"))?.filter { $0.hasPrefix("vnb-") } ?? []
        #expect(left.isEmpty, "namespaces left behind: \(left)")
    }
}
