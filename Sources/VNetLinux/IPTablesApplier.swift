import VNetCore

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
