/// A host's desired state as a person reads it, for diagnostic bundles: the kernel operations that build it
/// from nothing, then the dhcpd configuration and the iptables documents it renders to.
public enum HostStateDescription {
    public static func text(_ state: HostNetworkState, revision: UInt64) -> String {
        var out = "# \(state.host) (\(state.role), \(state.mode.rawValue)) at revision \(revision)\n\n## links and addresses\n"
        for operation in KernelPlanner.bringUp(state) { out += "\(operation)\n" }
        if let dhcpd = state.dhcpd { out += "\n## dhcpd.conf (on \(dhcpd.interfaces.joined(separator: ", ")))\n" + DHCPDConfRenderer.render(dhcpd) }
        if let firewall = state.firewall {
            out += "\n## iptables\n" + IPTablesRenderer.filter(firewall) + IPTablesRenderer.nat(firewall)
        }
        return out
    }
}
