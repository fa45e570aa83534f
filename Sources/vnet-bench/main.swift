import ArgumentParser

/// Benchmarks that print figures. Results are recorded in BENCHMARKS.md; run them with a release build
/// (`swift run -c release vnet-bench ...`).
struct VNetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnet-bench",
        abstract: "Measure vnet's performance; see BENCHMARKS.md for recorded results.",
        subcommands: [PlanBenchmark.self, BusBenchmark.self, IPTablesBenchmark.self])
}

VNetBench.main()
