import ArgumentParser
import Foundation
import VNetBus
import VNetSystem
import VNetCore
import VNetLinux

/// `vnet-bench iptables` (root): adding a group of 1000 rules to a filter table of 10 000, this project's way
/// (one iptables-restore --noflush of its chains) against Eucalyptus' (for every rule: iptables-save the whole
/// table, add the rule, iptables-restore the whole table), same run, in a network namespace of its own.
/// The tables both iptables benchmarks measure: vnet's groups of 100 rules each, in a namespace of their own.
enum BenchFirewall {
    static let layout = NetworkLayout(subnet: IPv4Network("10.0.0.0/8")!, addressesPerNetwork: 64)

    static func group(_ index: Int, rules: Int) -> FirewallConfig.GroupChain {
        let id = GroupID(user: "bench", name: "g\(index)")
        return .init(group: id, chain: ChainName.forGroup(id), network: layout.network(index), rules: (0..<rules).map { r in
            .init(source: IPv4Network(address: IPv4Address(UInt32(0xC612_0000) + UInt32(r) << 8), prefixLength: 24)!, traffic: .tcp((1 + r % 60000)...(1 + r % 60000)))
        })
    }

    /// A scratch namespace whose filter table holds `rules` rules of vnet's (applied whole), removed afterwards.
    static func inNamespace<T>(rules: Int, _ body: (IPTablesApplier, ProcessRunner, inout FirewallConfig) throws -> T) throws -> T {
        let namespace = "vnt-bench-\(UInt32.random(in: 0...UInt32.max))"
        let host = ProcessRunner()
        _ = try host.run(["ip", "netns", "add", namespace], input: nil)
        defer { _ = try? host.run(["ip", "netns", "del", namespace], input: nil) }
        let runner = ProcessRunner(prefix: ["ip", "netns", "exec", namespace])
        let applier = IPTablesApplier(runner: runner)
        var firewall = FirewallConfig(subnet: layout.subnet, groups: (0..<(rules / 100)).map { group($0, rules: 100) }, publicMappings: [], metadataTarget: nil)
        try applier.apply(firewall)
        return try body(applier, runner, &firewall)
    }
}

struct IPTablesBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "iptables", abstract: "Batched iptables-restore against per-rule save/merge/restore (needs root).")

    @Option(name: .customLong("existing-rules")) var existingRules = 10_000
    @Option(name: .customLong("new-rules")) var newRules = 1000
    @Option(help: "Eucalyptus-style cycles measured; the per-rule mean is projected to --new-rules.") var sample = 40
    @Flag(help: "Run every Eucalyptus-style cycle instead of a sample (about 0.25 s each).") var full = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard getuid() == 0 else { throw ValidationError("needs root (it makes a network namespace)") }
        try BenchFirewall.inNamespace(rules: existingRules) { applier, runner, firewall in try measure(applier, runner, &firewall) }
    }

    func measure(_ applier: IPTablesApplier, _ runner: ProcessRunner, _ firewall: inout FirewallConfig) throws {
        let groups = firewall.groups
        func group(_ index: Int, rules: Int) -> FirewallConfig.GroupChain { BenchFirewall.group(index, rules: rules) }

        // This project: the new group is one more chain in the next restore of the whole owned set.
        let added = group(groups.count, rules: newRules)
        firewall.groups.append(added)
        let start = monotonicSeconds()
        try applier.apply(firewall)
        let batched = monotonicSeconds() - start

        // Eucalyptus: per rule, save the whole table, merge the rule in, restore the whole table.
        func ports(_ traffic: SecurityRule.Traffic) -> String {
            if case .tcp(let range) = traffic { return IPTablesRenderer.portText(range) }
            return "1"
        }
        let chain = "euca-bench-new"
        _ = try runner.run(["iptables", "-w", "-N", chain], input: nil)
        let cycles = full ? newRules : min(sample, newRules)
        let eucaStart = monotonicSeconds()
        for rule in added.rules.prefix(cycles) {
            let saved = String(decoding: try runner.run(["iptables-save", "-t", "filter"], input: nil), as: UTF8.self)
            let line = "-A \(chain) -s \(rule.source) -d \(added.network) -p tcp -m tcp --dport \(ports(rule.traffic)) -j ACCEPT"
            guard let commit = saved.range(of: "COMMIT", options: .backwards) else { throw ValidationError("iptables-save printed no COMMIT") }
            let merged = saved.replacingCharacters(in: commit, with: line + "\nCOMMIT")
            _ = try runner.run(["iptables-restore"], input: Array(merged.utf8))
        }
        let perRule = (monotonicSeconds() - eucaStart) / Double(cycles)
        let eucalyptus = perRule * Double(newRules)
        let ratio = eucalyptus / batched

        struct Result: Encodable {
            var existingRules: Int, newRules: Int, batchedSeconds: Double, eucalyptusSeconds: Double
            var eucalyptusMeasuredCycles: Int, eucalyptusPerRuleSeconds: Double, speedup: Double, meetsTarget: Bool
        }
        let result = Result(existingRules: existingRules, newRules: newRules, batchedSeconds: batched, eucalyptusSeconds: eucalyptus,
                            eucalyptusMeasuredCycles: cycles, eucalyptusPerRuleSeconds: perRule, speedup: ratio, meetsTarget: ratio >= 50)
        if json {
            try printJSON(result)
        } else {
            print("""
            table: \(existingRules) rules in \(groups.count) group chains; adding a group of \(newRules) rules
              vnet (one iptables-restore --noflush of its chains, both tables): \(String(format: "%8.3f", batched)) s
              Eucalyptus (save, merge, restore the whole table per rule):        \(String(format: "%8.3f", eucalyptus)) s  \
            (\(String(format: "%.3f", perRule)) s per rule, \(cycles == newRules ? "all \(cycles) cycles run" : "mean of \(cycles) cycles, times \(newRules)"))
              speedup: \(String(format: "%.0f", ratio))x   target >= 50x: \(ratio >= 50 ? "MEETS" : "MISSES")
            """)
        }
    }
}
