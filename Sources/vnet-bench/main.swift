import ArgumentParser
import Foundation

/// Benchmarks that print figures. Results are recorded in BENCHMARKS.md; run them with a release build
/// (`swift run -c release vnet-bench ...`).
struct VNetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnet-bench",
        abstract: "Measure vnet's performance; see BENCHMARKS.md for recorded results.",
        subcommands: [PlanBenchmark.self, BusBenchmark.self, IPTablesBenchmark.self])
}

/// One JSON object on stdout, keys sorted, for scripts.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

VNetBench.main()
