/// Renders the front end's `FirewallConfig` as iptables-restore documents, one per table.
///
/// Ownership: the documents declare only this project's chains (VNET-* and one `vn-` chain per group) and are
/// meant for `iptables-restore --noflush`, which flushes and refills the chains it declares and leaves every
/// other chain alone. The built-in chains get one jump each (`jumps`), which the agent ensures idempotently.
/// The one built-in setting touched is FORWARD's policy, DROP, as Eucalyptus set it; VNET-FORWARD also ends by
/// dropping anything else bound for the private subnet, so isolation holds even if an operator resets it.
///
/// Semantics follow Eucalyptus: established traffic accepted, a chain per group holding its ingress rules,
/// traffic within a group accepted, instances may go out, masquerade out of the private subnet, DNAT and SNAT
/// for public addresses, metadata redirected to VNET_CLOUDIP:8773.
public enum IPTablesRenderer {
    public struct Jump: Sendable, Equatable {
        public var table: String
        public var builtin: String
        public var target: String
        /// The rule as `iptables -t TABLE -I BUILTIN 1 <arguments>` would take it.
        public var arguments: [String] { ["-j", target] }
    }

    public static let jumps: [Jump] = [
        Jump(table: "filter", builtin: "FORWARD", target: ChainName.forward),
        Jump(table: "nat", builtin: "PREROUTING", target: ChainName.preRouting),
        Jump(table: "nat", builtin: "OUTPUT", target: ChainName.output),
        Jump(table: "nat", builtin: "POSTROUTING", target: ChainName.postRouting),
    ]

    public static let metadataAddress = IPv4Address(169, 254, 169, 254)
    public static let metadataPort = 8773

    /// One of this project's chains and its rules ("-A CHAIN ..." lines), as written.
    public struct Chain: Sendable, Equatable, Codable {
        public var table: String
        public var name: String
        public var rules: [String]
        public init(table: String, name: String, rules: [String]) { self.table = table; self.name = name; self.rules = rules }
    }

    /// Every chain of this project for `firewall`, in the order the documents declare them: filter's
    /// VNET-FORWARD and one chain per group, then nat's three.
    public static func chains(_ firewall: FirewallConfig) -> [Chain] { chains(firewall, reusing: nil) }

    /// The same, taking the chain of every group that is as it was in `previous` from its chains instead of
    /// rendering it again: a change renders what it changes (VNET-FORWARD and nat are always rendered; they
    /// hold a few lines per group or address).
    public static func chains(_ firewall: FirewallConfig, reusing previous: (config: FirewallConfig, chains: [Chain])?) -> [Chain] {
        var unchanged: [String: Chain] = [:]
        if let previous {
            let groups = Dictionary(previous.config.groups.map { ($0.chain, $0) }, uniquingKeysWith: { first, _ in first })
            let before = Dictionary(previous.chains.filter { $0.table == "filter" }.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            for group in firewall.groups where groups[group.chain] == group && previous.config.subnet == firewall.subnet {
                unchanged[group.chain] = before[group.chain]
            }
        }
        let subnet = firewall.subnet.description
        var forward: [String] = []
        forward.reserveCapacity(3 + firewall.groups.count * 2)
        forward.append("-A " + ChainName.forward + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
        for group in firewall.groups {
            let network = group.network.description
            forward.append("-A " + ChainName.forward + " -s " + network + " -d " + network + " -j ACCEPT")
            forward.append("-A " + ChainName.forward + " -d " + network + " -j " + group.chain)
        }
        forward.append("-A " + ChainName.forward + " -s " + subnet + " ! -d " + subnet + " -j ACCEPT")
        forward.append("-A " + ChainName.forward + " -d " + subnet + " -j DROP")
        var chains = [Chain(table: "filter", name: ChainName.forward, rules: forward)]
        for group in firewall.groups {
            if let reused = unchanged[group.chain] { chains.append(reused); continue }
            let head = "-A " + group.chain + " -s "
            let destination = " -d " + group.network.description
            chains.append(Chain(table: "filter", name: group.chain, rules: group.rules.map { rule in
                head + rule.source.description + destination + match(rule.traffic) + " -j ACCEPT"
            }))
        }
        var preRouting: [String] = [], output: [String] = [], postRouting: [String] = []
        if let target = firewall.metadataTarget {
            preRouting.append("-A " + ChainName.preRouting + " -s " + subnet + " -d " + metadataAddress.description
                + "/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination " + target.description + ":\(metadataPort)")
        }
        for mapping in firewall.publicMappings {
            let publicAddress = mapping.publicAddress.description, privateAddress = mapping.privateAddress.description
            preRouting.append("-A " + ChainName.preRouting + " -d " + publicAddress + "/32 -j DNAT --to-destination " + privateAddress)
            output.append("-A " + ChainName.output + " -d " + publicAddress + "/32 -j DNAT --to-destination " + privateAddress)
            postRouting.append("-A " + ChainName.postRouting + " -s " + privateAddress + "/32 ! -d " + subnet + " -j SNAT --to-source " + publicAddress)
        }
        // Masquerade only what leaves the private subnet, not the host's other traffic (Eucalyptus had no -s).
        postRouting.append("-A " + ChainName.postRouting + " -s " + subnet + " ! -d " + subnet + " -j MASQUERADE")
        chains += [Chain(table: "nat", name: ChainName.preRouting, rules: preRouting), Chain(table: "nat", name: ChainName.output, rules: output),
                   Chain(table: "nat", name: ChainName.postRouting, rules: postRouting)]
        return chains
    }

    /// An iptables-restore document for `table` declaring `chains` (which flushes and refills them) and deleting
    /// `staleChains` at the end of the same transaction, after the chains that jumped to them were rewritten.
    /// Every other chain is left alone (`--noflush`). The filter document also sets FORWARD's policy.
    /// `edits`: rule-level changes to chains not declared ("-D CHAIN spec", "-I CHAIN N spec", `edit(from:to:)`).
    public static func document(table: String, chains: [Chain], staleChains: [String] = [], edits: [String] = []) -> String {
        var out = ""
        out.reserveCapacity(200 + chains.reduce(0) { $0 + $1.rules.count } * 90)
        out += "# \(table) table written by vnet; apply with iptables-restore --noflush (owned chains only)\n"
        out += "*" + table + "\n"
        if table == "filter" { out += ":FORWARD DROP [0:0]\n" }
        for chain in chains { out += ":" + chain.name + " - [0:0]\n" }
        for chain in staleChains { out += ":" + chain + " - [0:0]\n" }
        for chain in chains { for rule in chain.rules { out += rule + "\n" } }
        for line in edits { out += line + "\n" }
        for chain in staleChains { out += "-X " + chain + "\n" }
        out += "COMMIT\n"
        return out
    }

    /// The rule-level changes that turn chain `from` into `to` (same chain): deletions by rule, then insertions
    /// at their positions, for iptables-restore --noflush without declaring the chain (which would flush it
    /// and re-add every rule). Nil when an edit is not the cheaper way (most rules changed) or not a safe one (a
    /// rule repeated, so a deletion by rule could take the wrong one).
    public static func edit(from old: Chain, to new: Chain) -> [String]? {
        guard old.table == new.table, old.name == new.name, Set(old.rules).count == old.rules.count else { return nil }
        let difference = new.rules.difference(from: old.rules)
        guard difference.count * 2 < max(old.rules.count + new.rules.count, 2) else { return nil }
        let prefix = "-A " + new.name + " "
        var lines: [String] = []
        for change in difference.removals {
            guard case .remove(_, let rule, _) = change, rule.hasPrefix(prefix) else { return nil }
            lines.append("-D " + new.name + " " + rule.dropFirst(prefix.count))
        }
        for change in difference.insertions {
            guard case .insert(let offset, let rule, _) = change, rule.hasPrefix(prefix) else { return nil }
            lines.append("-I " + new.name + " \(offset + 1) " + rule.dropFirst(prefix.count))
        }
        return lines
    }

    /// The whole filter document: every chain of this project in the table. `staleChains`: chains of this
    /// project that exist but are no longer wanted (groups deleted).
    public static func filter(_ firewall: FirewallConfig, staleChains: [String] = []) -> String {
        document(table: "filter", chains: chains(firewall).filter { $0.table == "filter" }, staleChains: staleChains)
    }

    public static func nat(_ firewall: FirewallConfig) -> String {
        document(table: "nat", chains: chains(firewall).filter { $0.table == "nat" })
    }

    static func match(_ traffic: SecurityRule.Traffic) -> String {
        switch traffic {
        case .tcp(let ports): return " -p tcp -m tcp --dport " + portText(ports)
        case .udp(let ports): return " -p udp -m udp --dport " + portText(ports)
        case .icmp(nil, _): return " -p icmp"
        case .icmp(let type?, nil): return " -p icmp -m icmp --icmp-type \(type)"
        case .icmp(let type?, let code?): return " -p icmp -m icmp --icmp-type \(type)/\(code)"
        case .all: return ""
        }
    }

    public static func portText(_ ports: ClosedRange<Int>) -> String {
        ports.lowerBound == ports.upperBound ? String(ports.lowerBound) : "\(ports.lowerBound):\(ports.upperBound)"
    }
}
