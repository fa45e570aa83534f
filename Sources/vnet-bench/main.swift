import ArgumentParser
import Foundation

/// Benchmarks that print figures. Results are recorded in BENCHMARKS.md; run them with a release build
/// (`swift run -c release vnet-bench ...`).
struct VNetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnet-bench",
        abstract: "Measure vnet's performance; see BENCHMARKS.md for recorded results.",
        subcommands: [PlanBenchmark.self, BusBenchmark.self, IPTablesBenchmark.self, IPTablesChangeBenchmark.self, ReconcileBenchmark.self, NodeApplyBenchmark.self, DHCPDBenchmark.self, BringUpBenchmark.self, VLANBenchmark.self, VerifyVLANBenchmark.self, WatchBenchmark.self, FuzzBenchmark.self, EC2Benchmark.self, FailoverBenchmark.self])
}

/// `--sizes`: comma-separated counts, each within `range`.
func benchmarkSizes(_ text: String, within range: ClosedRange<Int>) throws -> [Int] {
    try text.split(separator: ",").map { item -> Int in
        guard let value = Int(item), range.contains(value) else { throw ValidationError("--sizes: '\(item)' is not \(range.lowerBound)-\(range.upperBound)") }
        return value
    }
}

/// The middle value of measurements (the upper one of the two middle ones for an even count).
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// One JSON object on stdout, keys sorted, for scripts.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// The benchmarks' front-end config: MANAGED, 10.0.0.0/8 in networks of 64 (4093 usable networks of 61
/// instances). `extra` adds lines (public addresses, metadata).
func benchmarkConfigText(_ extra: [String] = []) -> String {
    ([
        #"VNET_MODE="MANAGED""#, #"VNET_INTERFACE="eth0""#, #"VNET_DHCPDAEMON="/usr/sbin/dhcpd""#,
        #"VNET_SUBNET="10.0.0.0""#, #"VNET_NETMASK="255.0.0.0""#, #"VNET_DNS="192.0.2.53""#, #"VNET_ADDRSPERNET="64""#,
    ] + extra).joined(separator: "\n") + "\n"
}

VNetBench.main()
