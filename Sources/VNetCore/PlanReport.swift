/// What `vnetctl plan` shows: the instances with their allocations and, per host, the kernel operations, the
/// dhcpd.conf and the iptables-restore documents that would be applied.
public struct PlanReport: Sendable, Encodable {
    public struct InstanceRow: Sendable, Encodable, Equatable {
        public var id: String
        public var node: String
        public var group: String?
        public var ip: String?
        public var mac: String
        public var vlan: Int?
        public var bridge: String
        public var publicIp: String?
    }

    public struct IPTables: Sendable, Encodable, Equatable {
        public var filter: String
        public var nat: String
    }

    public struct Host: Sendable, Encodable {
        public var host: String
        public var role: String
        public var operations: [KernelOperation]
        public var dhcpdConf: String?
        public var dhcpdInterfaces: [String]?
        public var iptables: IPTables?
    }

    public var mode: String
    public var instances: [InstanceRow]
    public var hosts: [Host]

    /// `onlyHost` restricts the hosts shown (instances are always all listed). Throws when the cluster cannot
    /// be planned, or when `onlyHost` names no host of it.
    public init(config: VNetConfig, cluster: ClusterState, onlyHost: String? = nil) throws(ClusterError) {
        let planner = HostPlanner(config: config)
        mode = config.mode.rawValue
        let publicByInstance = cluster.publicAddressByInstance
        let layout = config.layout
        instances = cluster.instances.values.sorted { $0.id < $1.id }.map { instance in
            let network = instance.group.flatMap { cluster.groups[$0]?.network }
            let vlan = config.mode == .managed ? network.flatMap { layout?.vlan(ofNetwork: $0) } : nil
            let bridge = vlan.map { "eucabr\($0)" } ?? cluster.nodes[instance.node]?.bridge ?? ""
            return InstanceRow(id: instance.id.description, node: instance.node, group: instance.group?.description,
                               ip: instance.address?.description, mac: instance.mac.description, vlan: vlan,
                               bridge: bridge, publicIp: publicByInstance[instance.id]?.description)
        }
        let names: [String]
        if let onlyHost {
            guard onlyHost == cluster.frontend || cluster.nodes[onlyHost] != nil else {
                let known = ([cluster.frontend] + cluster.nodes.keys.sorted()).joined(separator: ", ")
                throw ClusterError(field: "--host", "no host '\(onlyHost)' in the scenario (hosts: \(known))")
            }
            names = [onlyHost]
        } else {
            names = [cluster.frontend] + cluster.nodes.keys.sorted()
        }
        hosts = []
        for name in names {
            guard let state = try planner.desiredState(of: name, in: cluster) else { continue }
            hosts.append(Host(
                host: name, role: state.role.rawValue,
                operations: KernelPlanner.bringUp(state),
                dhcpdConf: state.dhcpd.map { DHCPDConfRenderer.render($0) },
                dhcpdInterfaces: state.dhcpd?.interfaces,
                iptables: state.firewall.map { IPTables(filter: IPTablesRenderer.filter($0), nat: IPTablesRenderer.nat($0)) }))
        }
    }

    /// The readable plan.
    public var text: String {
        var out = "mode \(mode): \(instances.count) instance\(instances.count == 1 ? "" : "s"), \(hosts.count) host\(hosts.count == 1 ? "" : "s") shown\n"
        if !instances.isEmpty {
            let rows = [["INSTANCE", "NODE", "GROUP", "IP", "MAC", "VLAN", "BRIDGE", "PUBLIC IP"]] + instances.map {
                [$0.id, $0.node, $0.group ?? "-", $0.ip ?? "(dhcp)", $0.mac, $0.vlan.map(String.init) ?? "-", $0.bridge, $0.publicIp ?? "-"]
            }
            out += "\n" + table(rows)
        }
        for host in hosts {
            out += "\n== \(host.host) (\(host.role == "frontend" ? "front end" : "node")) ==\n"
            if host.operations.isEmpty { out += "no kernel operations\n" }
            for (number, operation) in host.operations.enumerated() {
                out += "\(number + 1). \(operation.description)\n"
            }
            if let conf = host.dhcpdConf {
                out += "--- dhcpd.conf (dhcpd on \(host.dhcpdInterfaces?.joined(separator: " ") ?? "")) ---\n" + conf
            }
            if let tables = host.iptables {
                out += "--- iptables-restore: filter ---\n" + tables.filter
                out += "--- iptables-restore: nat ---\n" + tables.nat
            }
        }
        return out
    }
}

/// Left-aligned columns separated by two spaces, trailing space trimmed.
public func table(_ rows: [[String]]) -> String {
    guard let width = rows.map(\.count).max() else { return "" }
    var widths = Array(repeating: 0, count: width)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    return rows.map { row in
        var line = ""
        for (i, cell) in row.enumerated() {
            line += i == row.count - 1 ? cell : cell.padding(to: widths[i] + 2)
        }
        return line
    }.joined(separator: "\n") + "\n"
}

extension String {
    func padding(to length: Int) -> String { count >= length ? self : self + String(repeating: " ", count: length - count) }
}

extension KernelOperation: Encodable {
    private enum Key: String, CodingKey { case op, text, name, parent, vlan, mac, port, bridge, device, address, broadcast, interfaces, table }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(description, forKey: .text)
        switch self {
        case .requireLink(let name): try c.encode("requireLink", forKey: .op); try c.encode(name, forKey: .name)
        case .createVLAN(let name, let parent, let vlan):
            try c.encode("createVLAN", forKey: .op); try c.encode(name, forKey: .name)
            try c.encode(parent, forKey: .parent); try c.encode(vlan, forKey: .vlan)
        case .createBridge(let name): try c.encode("createBridge", forKey: .op); try c.encode(name, forKey: .name)
        case .createTap(let name, let mac):
            try c.encode("createTap", forKey: .op); try c.encode(name, forKey: .name); try c.encode(mac.description, forKey: .mac)
        case .setUp(let name): try c.encode("setUp", forKey: .op); try c.encode(name, forKey: .name)
        case .attach(let port, let bridge):
            try c.encode("attach", forKey: .op); try c.encode(port, forKey: .port); try c.encode(bridge, forKey: .bridge)
        case .addAddress(let address), .removeAddress(let address):
            if case .addAddress = self { try c.encode("addAddress", forKey: .op) } else { try c.encode("removeAddress", forKey: .op) }
            try c.encode(address.device, forKey: .device); try c.encode(address.cidr, forKey: .address)
            try c.encodeIfPresent(address.broadcast?.description, forKey: .broadcast)
        case .detach(let port): try c.encode("detach", forKey: .op); try c.encode(port, forKey: .port)
        case .deleteLink(let name): try c.encode("deleteLink", forKey: .op); try c.encode(name, forKey: .name)
        case .configureDHCPD(let interfaces): try c.encode("configureDHCPD", forKey: .op); try c.encode(interfaces, forKey: .interfaces)
        case .stopDHCPD: try c.encode("stopDHCPD", forKey: .op)
        case .restoreIPTables(let table): try c.encode("restoreIPTables", forKey: .op); try c.encode(table, forKey: .table)
        case .clearIPTables(let table): try c.encode("clearIPTables", forKey: .op); try c.encode(table, forKey: .table)
        }
    }
}
