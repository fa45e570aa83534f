import Foundation
import Testing
import VNetLinux

/// The fuzz run recorded in BENCHMARKS.md is a program; a short run here keeps it working and, with a seed of
/// its own, adds fresh inputs to every CI run. A crash in any parser fails this test (the process dies).
@Suite("vnet-bench fuzz (short run)")
struct FuzzSmokeTests {
    @Test func everyParserSurvivesMutatedInputs() throws {
        let bench = NamespaceFixtures.binaries.appendingPathComponent("vnet-bench").path
        let seed = String(UInt64(Date().timeIntervalSince1970) % 100_000)
        do {
            let output = String(decoding: try ProcessRunner().run([bench, "fuzz", "--inputs", "20000", "--seed", seed, "--json"], input: nil), as: UTF8.self)
            struct Figure: Decodable { var target: String; var inputs: Int }
            let figures = try JSONDecoder().decode([Figure].self, from: Data(output.utf8))
            #expect(figures.map(\.target) == ["conf", "envelope", "dhcp", "probe", "preload", "omapi", "leases", "dhcp-frame", "lldp", "ec2"] && figures.allSatisfy { $0.inputs == 20000 })
        } catch {
            Issue.record("the fuzz run failed with seed \(seed) (rerun: vnet-bench fuzz --seed \(seed)): \(error)")
        }
    }
}
