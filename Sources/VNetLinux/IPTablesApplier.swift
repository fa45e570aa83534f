import Foundation
import VNetCore

/// vnet's part of the live firewall (see `IPTablesApplier.snapshot`), kept by chain ("TABLE CHAIN": "filter
/// vn-x", "filter :FORWARD" for the policy), each chain's lines in order: a change replaces the chains it
/// touched without going through the rest.
public struct FirewallSnapshot: Sendable, Equatable, Codable {
    public private(set) var chains: [String: [String]]
    public private(set) var ruleCount: Int

    public init(lines: [String]) {
        chains = Self.byChain(lines)
        ruleCount = lines.count { $0.contains(" -A ") }
    }

    /// Every line, chain by chain (chains in name order).
    public var lines: [String] { chains.keys.sorted().flatMap { chains[$0]! } }

    /// What differs from `expected`, in words (empty when nothing does). Order matters within a chain (rules
    /// are evaluated in order), not between chains (iptables-save lists them in its own order).
    public func differences(from expected: FirewallSnapshot) -> [String] {
        guard chains != expected.chains else { return [] }
        let now = lines, then = expected.lines
        let nowSet = Set(now), thenSet = Set(then)
        let missing = then.filter { !nowSet.contains($0) }, extra = now.filter { !thenSet.contains($0) }
        var found: [String] = []
        if !missing.isEmpty { found.append("\(missing.count) of vnet's iptables lines missing (\(missing.prefix(2).joined(separator: "; ")))") }
        if !extra.isEmpty { found.append("\(extra.count) unexpected lines in vnet's chains (\(extra.prefix(2).joined(separator: "; ")))") }
        if found.isEmpty { found.append("vnet's iptables rules reordered") }
        return found
    }

    /// "TABLE CHAIN" of a snapshot line ("filter -A vn-x ...", "filter :FORWARD DROP").
    static func chainKey(_ line: String) -> String {
        let tokens = line.split(separator: " ", maxSplits: 3)
        guard tokens.count >= 2 else { return line }
        if tokens[1].hasPrefix(":") { return "\(tokens[0]) \(tokens[1])" }
        return tokens.count >= 3 ? "\(tokens[0]) \(tokens[2])" : line
    }

    static func byChain(_ lines: [String]) -> [String: [String]] {
        Dictionary(grouping: lines, by: chainKey)
    }

    /// This snapshot with the lines of `touched` ("TABLE CHAIN") replaced by `fresh` (what the kernel now
    /// lists for them): after an apply that touched only those chains, the rest is as it was.
    public func replacing(chains touched: Set<String>, with fresh: [String]) -> FirewallSnapshot {
        var next = self
        for key in touched {
            next.ruleCount -= next.chains[key]?.count { $0.contains(" -A ") } ?? 0
            next.chains[key] = nil
        }
        for (key, lines) in Self.byChain(fresh) {
            next.ruleCount += lines.count { $0.contains(" -A ") } - (next.chains[key]?.count { $0.contains(" -A ") } ?? 0)
            next.chains[key] = lines
        }
        return next
    }

    /// The lines of one chain ("TABLE CHAIN"), none if it has none.
    public func lines(of key: String) -> [String] { chains[key] ?? [] }
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

    /// What an apply of only the changed chains did.
    public struct Change: Sendable, Equatable {
        /// Chains declared (written whole) and chains deleted, as "TABLE CHAIN".
        public var written: [String] = []
        public var deleted: [String] = []
        /// Jumps that had to be added to built-in chains (drift, when they existed before).
        public var jumps: [String] = []
        /// iptables-restore transactions run (one per table written): each is one ruleset generation.
        public var transactions = 0
        public var isEmpty: Bool { written.isEmpty && deleted.isEmpty && jumps.isEmpty }
    }

    /// Writes only the chains that differ from `previous` (what the last apply wrote, chain by chain): new and
    /// changed chains are declared (which flushes and refills them), chains written before and no longer wanted
    /// are deleted, in one iptables-restore --noflush per table that has any, so the cost of a change is the
    /// change's, not the table's. Every other chain, ours unchanged and the operator's, is left alone. Then the
    /// jumps, as `apply`.
    ///
    /// A chain that changed by a few rules (VNET-FORWARD when a group comes or goes: two jumps among two per
    /// group) is edited rule by rule instead of flushed and refilled, provided the kernel still has it exactly as
    /// `recorded` says (one `iptables -S` of that chain); otherwise it is declared whole. The jumps from the
    /// built-in chains are not checked here: a change does not touch them, and the reconcile finds them gone.
    public func apply(_ firewall: FirewallConfig, since previous: [IPTablesRenderer.Chain], wanted: [IPTablesRenderer.Chain]? = nil,
                      recorded: FirewallSnapshot) throws(CommandError) -> Change {
        let wanted = wanted ?? IPTablesRenderer.chains(firewall)
        let before = Dictionary(previous.map { ("\($0.table) \($0.name)", $0) }, uniquingKeysWith: { $1 })
        let wantedKeys = Set(wanted.map { "\($0.table) \($0.name)" })
        var change = Change()
        for table in ["filter", "nat"] {
            let changed = wanted.filter { $0.table == table && before["\(table) \($0.name)"] != $0 }
            let stale = previous.filter { $0.table == table && !wantedKeys.contains("\(table) \($0.name)") }.map(\.name)
            guard !changed.isEmpty || !stale.isEmpty else { continue }
            var declared: [IPTablesRenderer.Chain] = [], edits: [String] = []
            for chain in changed {
                let key = "\(table) \(chain.name)"
                if let old = before[key], let script = IPTablesRenderer.edit(from: old, to: chain),
                   try snapshot(of: [key]) == recorded.lines(of: key) {
                    edits += script
                } else {
                    declared.append(chain)
                }
            }
            _ = try runner.run(["iptables-restore", "-w", "--noflush"],
                               input: Array(IPTablesRenderer.document(table: table, chains: declared, staleChains: stale, edits: edits).utf8))
            change.transactions += 1
            change.written += changed.map { "\(table) \($0.name)" }
            change.deleted += stale.map { "\(table) \($0)" }
        }
        return change
    }

    /// What the kernel lists for some of our chains ("TABLE CHAIN"), in the snapshot's spelling: one
    /// `iptables -S CHAIN` each, which reads that chain, not the table.
    public func snapshot(of chains: [String]) throws(CommandError) -> [String] {
        var lines: [String] = []
        for key in chains {
            let parts = key.split(separator: " ")
            guard parts.count == 2 else { continue }
            let text = String(decoding: try runner.run(["iptables", "-w", "-t", String(parts[0]), "-S", String(parts[1])], input: nil), as: UTF8.self)
            for line in text.split(separator: "\n") where line.hasPrefix("-A ") { lines.append("\(parts[0]) \(line)") }
        }
        return lines
    }

    /// Writes both tables whole (deleting group chains no longer wanted), then makes sure each built-in chain
    /// jumps to ours. Returns the jumps that had to be added (drift, when they existed before). For the first
    /// apply, after a preload, and to repair drift; a change to a known firewall takes `apply(_:since:)`.
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
