/// What a host really has, as far as a diagnosis needs to know: the facts `HostFindings` compares with the
/// desired state. Gathered by the Linux backend (ip -json, iptables-save, dhcpd's pid file, sysctl).
public struct HostObservation: Sendable, Equatable {
    public struct Link: Sendable, Equatable {
        public var isUp: Bool
        public var master: String?
        public init(isUp: Bool, master: String?) { self.isUp = isUp; self.master = master }
    }

    public var links: [String: Link] = [:]
    /// Addresses as "device cidr" ("eucabr10 10.20.0.1/26").
    public var addresses: Set<String> = []
    /// nil: not known (no dhcpd manager on this host).
    public var dhcpdRunning: Bool?
    /// Chain names in iptables-save's filter and nat tables; nil: not read.
    public var iptablesChains: Set<String>?
    public var ipForwarding: Bool?

    public init() {}
}

/// What looks wrong on one host: its desired state compared with what is there, one sentence per problem,
/// each naming the object and what it is for. The troubleshooting list of the original document (is the
/// bridge there, is the VLAN device on it, is dhcpd running on the tagged interface, are the group's rules
/// loaded), done by a program.
public enum HostFindings {
    public static func findings(desired: HostNetworkState, observed: HostObservation) -> [String] {
        var found: [String] = []
        func link(_ name: String, _ what: String) -> HostObservation.Link? {
            guard let link = observed.links[name] else { found.append("\(what) \(name) is missing"); return nil }
            if !link.isUp { found.append("\(what) \(name) is down") }
            return link
        }
        for name in desired.requiredLinks { _ = link(name, "interface") }
        for device in desired.vlanDevices { _ = link(device.name, "802.1Q device (VLAN \(device.vlan) on \(device.parent))") }
        for bridge in desired.bridges {
            guard link(bridge.name, "bridge") != nil else { continue }
            for port in bridge.ports where observed.links[port] != nil && observed.links[port]?.master != bridge.name {
                found.append("\(port) is not a port of bridge \(bridge.name)")
            }
        }
        for vif in desired.vifs {
            guard let present = link(vif.name, "instance \(vif.instance)'s vif") else { continue }
            if present.master != vif.bridge, observed.links[vif.bridge] != nil {
                found.append("instance \(vif.instance)'s vif \(vif.name) is \(present.master.map { "in \($0)" } ?? "in no bridge"), not in \(vif.bridge)")
            }
        }
        for address in desired.addresses where observed.links[address.device] != nil && !observed.addresses.contains("\(address.device) \(address.cidr)") {
            found.append("address \(address.cidr) is missing from \(address.device)")
        }
        if let dhcpd = desired.dhcpd, observed.dhcpdRunning == false {
            // A tagged interface is named with its VLAN: in MANAGED each group's DHCP rides on its own VID.
            let served = dhcpd.interfaces.map { name in desired.vlanDevices.first { $0.name == name }.map { "\(name) (VLAN \($0.vlan))" } ?? name }
            found.append("dhcpd is not running (it should serve \(served.joined(separator: ", ")))")
        }
        if let firewall = desired.firewall, let chains = observed.iptablesChains {
            for group in firewall.groups where !chains.contains(group.chain) {
                found.append("security group \(group.group)'s chain \(group.chain) is missing from iptables")
            }
            if !chains.contains(ChainName.forward) { found.append("vnet's chain \(ChainName.forward) is missing from iptables") }
        }
        if desired.role == .frontend, desired.mode.carvesNetworks, observed.ipForwarding == false {
            found.append("net.ipv4.ip_forward is 0: the front end does not route between the groups' networks")
        }
        return found
    }

    /// Chain names declared in an iptables-save document (":NAME POLICY [p:b]" lines), every table.
    public static func chains(inIPTablesSave text: String) -> Set<String> {
        var chains: Set<String> = []
        for line in text.split(separator: "\n") where line.hasPrefix(":") {
            if let name = line.dropFirst().split(separator: " ").first { chains.insert(String(name)) }
        }
        return chains
    }
}

/// What looks wrong with the cluster as the coordinator sees it: hosts not UP, hosts behind on their revision,
/// hosts that did not answer the diagnosis.
public enum ClusterFindings {
    public struct Host: Sendable, Equatable {
        public var name: String
        public var state: HostLiveness
        public var desiredRevision: UInt64
        public var appliedRevision: UInt64
        public var answered: Bool
        /// What of the applied revision the host's agent reported not on the host, one line per object.
        public var notApplied: [String]
        public init(name: String, state: HostLiveness, desiredRevision: UInt64, appliedRevision: UInt64, answered: Bool, notApplied: [String] = []) {
            self.name = name; self.state = state; self.desiredRevision = desiredRevision
            self.appliedRevision = appliedRevision; self.answered = answered; self.notApplied = notApplied
        }
    }

    public static func findings(_ hosts: [Host]) -> [(host: String, text: String)] {
        var found: [(String, String)] = []
        for host in hosts {
            switch host.state {
            case .up: break
            case .new: found.append((host.name, "\(host.name) has never been heard from (is its agent running?)"))
            case .suspect, .down: found.append((host.name, "\(host.name) is \(host.state.rawValue)"))
            }
            if host.appliedRevision < host.desiredRevision {
                found.append((host.name, "\(host.name) is behind: applied revision \(host.appliedRevision), desired \(host.desiredRevision)"))
            }
            for line in host.notApplied { found.append((host.name, "\(host.name) applied revision \(host.appliedRevision) except \(line)")) }
            if !host.answered, host.state == .up { found.append((host.name, "\(host.name) did not answer the diagnosis in time")) }
        }
        return found
    }
}
