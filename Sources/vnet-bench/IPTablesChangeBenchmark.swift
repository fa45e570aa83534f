import ArgumentParser
import Foundation
import VNetCore
import VNetLinux
import VNetSystem

/// `vnet-bench iptables-change` (root): the cost of one change (a group of one rule added) to a filter table
/// of 1 000, 10 000 and 80 000 rules, three ways in the same run, each in a network namespace of its own:
/// - vnet now, as the agent does for a change: only the groups that changed are rendered, only the chains that
///   differ are written (VNET-FORWARD edited rule by rule, after checking it is as recorded) and read back;
/// - the whole rewrite it replaces: every chain of vnet's written (`apply(_:)`) and both tables read back
///   (`snapshot()`);
/// - Eucalyptus: iptables-save of the whole table, the rule merged in, iptables-restore of the whole table.
struct IPTablesChangeBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "iptables-change", abstract: "One firewall change at 1k, 10k and 80k rules: changed chains only, whole rewrite, Eucalyptus (needs root).")

    @Option(help: "Table sizes, comma-separated.") var sizes = "1000,10000,80000"
    @Option(help: "Changes measured per size and method (the median is shown).") var repeats = 3
    @Flag(help: "Print one JSON object.") var json = false

    struct Row: Encodable {
        var rules: Int, changedChainsSeconds: Double, wholeRewriteSeconds: Double, eucalyptusSeconds: Double
    }

    func run() throws {
        guard getuid() == 0 else { throw ValidationError("needs root (it makes network namespaces)") }
        let counts = try benchmarkSizes(sizes, within: 100...200_000)
        guard (1...20).contains(repeats) else { throw ValidationError("--repeats is 1-20") }
        func group(_ index: Int, rules: Int) -> FirewallConfig.GroupChain { BenchFirewall.group(index, rules: rules) }
        func table(_ count: Int, _ body: (IPTablesApplier, ProcessRunner, inout FirewallConfig) throws -> Double) throws -> Double {
            try BenchFirewall.inNamespace(rules: count, body)
        }

        var rows: [Row] = []
        for count in counts {
            if !json { FileHandle.standardError.write(Data("iptables-change: \(count) rules...\n".utf8)) }
            let changed = try table(count) { applier, _, firewall in
                var times: [Double] = []
                // What the agent holds after its first apply: the chains written and the kernel's listing.
                var written = IPTablesRenderer.chains(firewall)
                var recorded = try applier.snapshot()
                for index in 0..<repeats {
                    let before = firewall
                    firewall.groups.append(group(count / 100 + index, rules: 1))
                    let start = monotonicSeconds()
                    let chains = IPTablesRenderer.chains(firewall, reusing: (before, written))
                    let change = try applier.apply(firewall, since: written, wanted: chains, recorded: recorded)
                    recorded = recorded.replacing(chains: Set(change.written + change.deleted), with: try applier.snapshot(of: change.written))
                    times.append(monotonicSeconds() - start)
                    written = chains
                }
                return median(times)
            }
            let whole = try table(count) { applier, _, firewall in
                var times: [Double] = []
                for index in 0..<repeats {
                    firewall.groups.append(group(count / 100 + index, rules: 1))
                    let start = monotonicSeconds()
                    try applier.apply(firewall)
                    _ = try applier.snapshot()
                    times.append(monotonicSeconds() - start)
                }
                return median(times)
            }
            let eucalyptus = try table(count) { _, runner, firewall in
                var times: [Double] = []
                let chain = "euca-bench-new"
                _ = try runner.run(["iptables", "-w", "-N", chain], input: nil)
                for index in 0..<repeats {
                    let start = monotonicSeconds()
                    let saved = String(decoding: try runner.run(["iptables-save", "-t", "filter"], input: nil), as: UTF8.self)
                    guard let commit = saved.range(of: "COMMIT", options: .backwards) else { throw ValidationError("iptables-save printed no COMMIT") }
                    let line = "-A \(chain) -s 198.18.\(index).0/24 -d 10.0.0.0/26 -p tcp -m tcp --dport 22 -j ACCEPT"
                    _ = try runner.run(["iptables-restore"], input: Array(saved.replacingCharacters(in: commit, with: line + "\nCOMMIT").utf8))
                    times.append(monotonicSeconds() - start)
                }
                return median(times)
            }
            rows.append(Row(rules: count, changedChainsSeconds: changed, wholeRewriteSeconds: whole, eucalyptusSeconds: eucalyptus))
        }

        let smallest = rows.first?.changedChainsSeconds ?? 0
        let largest = rows.last?.changedChainsSeconds ?? 0
        if json {
            struct Result: Encodable { var rows: [Row]; var largestOverSmallest: Double; var meetsTargets: Bool }
            try printJSON(Result(rows: rows, largestOverSmallest: largest / smallest, meetsTargets: largest <= 0.05 && largest <= 2 * smallest))
            return
        }
        print("ONE GROUP OF ONE RULE ADDED   CHANGED CHAINS   WHOLE REWRITE (before)   EUCALYPTUS (save, merge, restore)")
        for row in rows {
            print(String(format: "%7d rules                  %8.1f ms       %8.1f ms (%5.0fx)       %8.1f ms (%5.0fx)", row.rules, row.changedChainsSeconds * 1000,
                         row.wholeRewriteSeconds * 1000, row.wholeRewriteSeconds / row.changedChainsSeconds,
                         row.eucalyptusSeconds * 1000, row.eucalyptusSeconds / row.changedChainsSeconds))
        }
        print(String(format: "target: at most 50 ms at the largest (%@) and at most 2x the smallest (%.2fx): %@", "\(largest * 1000 < 50 ? "met" : "missed")",
                     largest / smallest, largest <= 0.05 && largest <= 2 * smallest ? "MEETS" : "MISSES"))
    }
}
