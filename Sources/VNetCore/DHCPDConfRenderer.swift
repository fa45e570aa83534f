/// Renders `DHCPDConfig` as ISC dhcpd.conf text in the shape Eucalyptus 3.4.2 wrote, so that an operator who
/// knows euca-dhcp.conf recognises it: global lease times, `subnet` stanzas with mask, broadcast, DNS and
/// router, and one `host node-IP` entry per instance with its fixed address.
public enum DHCPDConfRenderer {
    public static func render(_ config: DHCPDConfig) -> String {
        var out = ""
        out.reserveCapacity(200 + config.subnets.count * 220 + config.hosts.count * 100)
        out += "# dhcpd.conf written by vnet; do not edit: it is rewritten on every change\n"
        out += "default-lease-time \(config.leaseSeconds);\n"
        out += "max-lease-time \(config.leaseSeconds);\n"
        out += "ddns-update-style none;\n"
        out += "authoritative;\n\n"
        let indent = config.sharedNetwork ? "  " : ""
        if config.sharedNetwork { out += "shared-network euca {\n" }
        for subnet in config.subnets {
            let mask = subnet.network.netmask.description
            out += indent + "subnet " + subnet.network.address.description + " netmask " + mask + " {\n"
            out += indent + "  option subnet-mask " + mask + ";\n"
            out += indent + "  option broadcast-address " + subnet.broadcast.description + ";\n"
            if !subnet.dns.isEmpty {
                out += indent + "  option domain-name-servers " + subnet.dns.map(\.description).joined(separator: ", ") + ";\n"
            }
            if let router = subnet.router { out += indent + "  option routers " + router.description + ";\n" }
            out += indent + "}\n"
        }
        if config.sharedNetwork { out += "}\n" }
        if !config.hosts.isEmpty { out += "\n" }
        for host in config.hosts {
            let address = host.address.description
            out += "host node-" + address + " {\n  hardware ethernet " + host.mac.description
                + ";\n  fixed-address " + address + ";\n}\n"
        }
        return out
    }
}
