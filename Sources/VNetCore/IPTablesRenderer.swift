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

    /// `staleChains`: chains of this project that exist but are no longer wanted (groups deleted). They are
    /// declared (which flushes them) and deleted at the end of the same transaction, after the chains that
    /// jumped to them were rewritten.
    public static func filter(_ firewall: FirewallConfig, staleChains: [String] = []) -> String {
        let subnet = firewall.subnet.description
        var out = ""
        out.reserveCapacity(400 + firewall.groups.count * 200 + firewall.groups.reduce(0) { $0 + $1.rules.count } * 90)
        out += "# filter table written by vnet; apply with iptables-restore --noflush (owned chains only)\n"
        out += "*filter\n:FORWARD DROP [0:0]\n:" + ChainName.forward + " - [0:0]\n"
        for group in firewall.groups { out += ":" + group.chain + " - [0:0]\n" }
        for chain in staleChains { out += ":" + chain + " - [0:0]\n" }
        out += "-A " + ChainName.forward + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        for group in firewall.groups {
            let network = group.network.description
            out += "-A " + ChainName.forward + " -s " + network + " -d " + network + " -j ACCEPT\n"
            out += "-A " + ChainName.forward + " -d " + network + " -j " + group.chain + "\n"
        }
        out += "-A " + ChainName.forward + " -s " + subnet + " ! -d " + subnet + " -j ACCEPT\n"
        out += "-A " + ChainName.forward + " -d " + subnet + " -j DROP\n"
        for group in firewall.groups {
            let head = "-A " + group.chain + " -s "
            let destination = " -d " + group.network.description
            for rule in group.rules {
                out += head + rule.source.description + destination + match(rule.traffic) + " -j ACCEPT\n"
            }
        }
        for chain in staleChains { out += "-X " + chain + "\n" }
        out += "COMMIT\n"
        return out
    }

    public static func nat(_ firewall: FirewallConfig) -> String {
        let subnet = firewall.subnet.description
        var out = ""
        out.reserveCapacity(400 + firewall.publicMappings.count * 250)
        out += "# nat table written by vnet; apply with iptables-restore --noflush (owned chains only)\n"
        out += "*nat\n"
        for chain in [ChainName.preRouting, ChainName.output, ChainName.postRouting] { out += ":" + chain + " - [0:0]\n" }
        if let target = firewall.metadataTarget {
            out += "-A " + ChainName.preRouting + " -s " + subnet + " -d " + metadataAddress.description
                + "/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination " + target.description + ":\(metadataPort)\n"
        }
        for mapping in firewall.publicMappings {
            let publicAddress = mapping.publicAddress.description, privateAddress = mapping.privateAddress.description
            out += "-A " + ChainName.preRouting + " -d " + publicAddress + "/32 -j DNAT --to-destination " + privateAddress + "\n"
            out += "-A " + ChainName.output + " -d " + publicAddress + "/32 -j DNAT --to-destination " + privateAddress + "\n"
        }
        for mapping in firewall.publicMappings {
            out += "-A " + ChainName.postRouting + " -s " + mapping.privateAddress.description + "/32 ! -d " + subnet
                + " -j SNAT --to-source " + mapping.publicAddress.description + "\n"
        }
        // Masquerade only what leaves the private subnet, not the host's other traffic (Eucalyptus had no -s).
        out += "-A " + ChainName.postRouting + " -s " + subnet + " ! -d " + subnet + " -j MASQUERADE\n"
        out += "COMMIT\n"
        return out
    }

    static func match(_ traffic: SecurityRule.Traffic) -> String {
        switch traffic {
        case .tcp(let ports): return " -p tcp -m tcp --dport " + portText(ports)
        case .udp(let ports): return " -p udp -m udp --dport " + portText(ports)
        case .icmp(nil, _): return " -p icmp"
        case .icmp(let type?, nil): return " -p icmp -m icmp --icmp-type \(type)"
        case .icmp(let type?, let code?): return " -p icmp -m icmp --icmp-type \(type)/\(code)"
        }
    }

    public static func portText(_ ports: ClosedRange<Int>) -> String {
        ports.lowerBound == ports.upperBound ? String(ports.lowerBound) : "\(ports.lowerBound):\(ports.upperBound)"
    }
}
