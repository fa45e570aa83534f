import ArgumentParser
import Foundation

/// Benchmarks that print figures. Results are recorded in BENCHMARKS.md; run them with a release build
/// (`swift run -c release vnet-bench ...`).
struct VNetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnet-bench",
        abstract: "Measure vnet's performance; see BENCHMARKS.md for recorded results.",
        subcommands: [PlanBenchmark.self, BusBenchmark.self, IPTablesBenchmark.self, IPTablesChangeBenchmark.self, ReconcileBenchmark.self, NodeApplyBenchmark.self, BringUpBenchmark.self, VLANBenchmark.self, FuzzBenchmark.self])
}

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
