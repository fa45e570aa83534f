import Foundation
import VNetCore

/// vnet's part of the live firewall (see `IPTablesApplier.snapshot`).
public struct FirewallSnapshot: Sendable, Equatable, Codable {
    public var lines: [String]
    public var ruleCount: Int { lines.count { $0.contains(" -A ") } }

    /// What differs from `expected`, in words (empty when nothing does).
    public func differences(from expected: FirewallSnapshot) -> [String] {
        let now = Set(lines), then = Set(expected.lines)
        let missing = expected.lines.filter { !now.contains($0) }, extra = lines.filter { !then.contains($0) }
        var found: [String] = []
        if !missing.isEmpty { found.append("\(missing.count) of vnet's iptables lines missing (\(missing.prefix(2).joined(separator: "; ")))") }
        if !extra.isEmpty { found.append("\(extra.count) unexpected lines in vnet's chains (\(extra.prefix(2).joined(separator: "; ")))") }
        if found.isEmpty, lines != expected.lines { found.append("vnet's iptables rules reordered") }
        return found
    }
}

/// Applies the front end's firewall with iptables-restore, one atomic transaction per table, owning only this
/// project's chains (see `IPTablesRenderer` for what that means for an operator's rules).
public struct IPTablesApplier: Sendable {
    let runner: CommandRunner

    public init(runner: CommandRunner) { self.runner = runner }

    /// This project's chains in a table, from `iptables -S`: the fixed VNET-* chains and the group chains.
    func ownedChains(_ table: String) throws(CommandError) -> [String] {
        let listing = String(decoding: try runner.run(["iptables", "-w", "-t", table, "-S"], input: nil), as: UTF8.self)
        return listing.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("-N ") else { return nil }
            let name = String(line.dropFirst(3))
            return name.hasPrefix(ChainName.prefix) || name.hasPrefix("VNET-") ? name : nil
        }
    }

    /// Writes both tables (deleting group chains no longer wanted), then makes sure each built-in chain jumps
    /// to ours. Returns the jumps that had to be added (drift, when they existed before).
    @discardableResult
    public func apply(_ firewall: FirewallConfig) throws(CommandError) -> [String] {
        let wanted = Set(firewall.groups.map(\.chain))
        let stale = try ownedChains("filter").filter { $0.hasPrefix(ChainName.prefix) && !wanted.contains($0) }.sorted()
        _ = try runner.run(["iptables-restore", "-w", "--noflush"], input: Array(IPTablesRenderer.filter(firewall, staleChains: stale).utf8))
        _ = try runner.run(["iptables-restore", "-w", "--noflush"], input: Array(IPTablesRenderer.nat(firewall).utf8))
        return try ensureJumps()
    }

    /// Inserts `-j VNET-…` at the top of each built-in chain that lacks it (idempotent: checked with -C).
    public func ensureJumps() throws(CommandError) -> [String] {
        var added: [String] = []
        for jump in IPTablesRenderer.jumps {
            let rule = jump.arguments
            do {
                _ = try runner.run(["iptables", "-w", "-t", jump.table, "-C", jump.builtin] + rule, input: nil)
            } catch {
                _ = try runner.run(["iptables", "-w", "-t", jump.table, "-I", jump.builtin, "1"] + rule, input: nil)
                added.append("iptables -t \(jump.table) -I \(jump.builtin) 1 \(rule.joined(separator: " "))")
            }
        }
        return added
    }

    /// vnet's part of the live tables as iptables-save prints them (so it compares with itself, whatever the
    /// iptables variant's spelling): FORWARD's policy, every rule of vnet's chains, and the jumps to them, in
    /// order, each prefixed with its table. Two processes, whatever the table size.
    public func snapshot() throws(CommandError) -> FirewallSnapshot {
        var lines: [String] = []
        for table in ["filter", "nat"] {
            let text = String(decoding: try runner.run(["iptables-save", "-t", table], input: nil), as: UTF8.self)
            for line in text.split(separator: "\n") {
                if table == "filter", line.hasPrefix(":FORWARD ") {
                    lines.append("filter :FORWARD \(line.split(separator: " ").dropFirst().first ?? "")")
                } else if line.hasPrefix("-A ") {
                    let tokens = line.split(separator: " ").map(String.init)
                    if tokens.count > 1, ChainName.isOurs(tokens[1]) || ChainName.jumpsToOurs(tokens) { lines.append("\(table) \(line)") }
                }
            }
        }
        return FirewallSnapshot(lines: lines)
    }

    /// Checks with `iptables-restore --test` what `load` would write; a rejected line is named in the
    /// operator's file.
    public func check(_ preload: IPTablesPreload, with firewall: FirewallConfig) throws(CommandError) {
        let (document, origins) = preload.document(with: firewall)
        do {
            _ = try runner.run(["iptables-restore", "-w", "--test"], input: Array(document.utf8))
        } catch {
            var error = error
            // iptables-restore names a line of the merged document: "line N failed" (legacy) or "Error occurred
            // at line: N" (nf_tables).
            if let number = Self.failedLine(error.stderr), number >= 1, number <= origins.count {
                let text = document.split(separator: "\n", omittingEmptySubsequences: false)[number - 1]
                error.stderr = origins[number - 1].map { "\(preload.path):\($0): iptables-restore rejects '\(text)'; nothing was changed" }
                    ?? "iptables-restore rejects vnet's own line '\(text)' next to \(preload.path); nothing was changed"
            } else {
                error.stderr = "\(preload.path): iptables-restore --test failed: \(error.stderr.trimmingCharacters(in: .whitespacesAndNewlines)); nothing was changed"
            }
            throw error
        }
    }

    static func failedLine(_ message: String) -> Int? {
        for pattern in [#"line (\d+) failed"#, #"Error occurred at line: (\d+)"#] {
            if let range = message.range(of: pattern, options: .regularExpression),
               let number = message[range].split(whereSeparator: { !$0.isNumber }).last.flatMap({ Int($0) }) { return number }
        }
        return nil
    }

    /// Replaces the tables the preload names with its content plus vnet's chains, in one plain (flushing)
    /// iptables-restore: one transaction per table, never a moment without vnet's rules. `check` it first.
    public func load(_ preload: IPTablesPreload, with firewall: FirewallConfig) throws(CommandError) {
        _ = try runner.run(["iptables-restore", "-w"], input: Array(preload.document(with: firewall).text.utf8))
    }

    /// Takes everything of this project out of both tables: the jumps, then our chains. The FORWARD policy is
    /// left as it is (the operator decides what happens once vnet is gone).
    public func remove() throws(CommandError) {
        for jump in IPTablesRenderer.jumps {
            while (try? runner.run(["iptables", "-w", "-t", jump.table, "-D", jump.builtin] + jump.arguments, input: nil)) != nil {}
        }
        for table in ["filter", "nat"] {
            let chains = try ownedChains(table)
            guard !chains.isEmpty else { continue }
            let document = "*\(table)\n" + chains.map { ":\($0) - [0:0]\n" }.joined() + chains.map { "-X \($0)\n" }.joined() + "COMMIT\n"
            _ = try runner.run(["iptables-restore", "-w", "--noflush"], input: Array(document.utf8))
        }
    }
}
