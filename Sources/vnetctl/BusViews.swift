import VNetCore
import VNetProto

/// The JSON shapes of bus replies: addresses as text, absent values as null, names an operator would use.
struct InstanceView: Encodable {
    var id: String, node: String, group: String?, ip: String?, ipLearned: Bool?, mac: String, vlan: Int?, bridge: String, publicIp: String?
    init(_ info: Vnet_V1_InstanceInfo) {
        id = info.instanceID; node = info.node; group = info.group.isEmpty ? nil : info.group
        ip = info.address == 0 ? nil : IPv4Address(info.address).description
        ipLearned = info.addressLearned ? true : nil
        mac = MACAddress(info.mac).description; vlan = info.vlan == 0 ? nil : Int(info.vlan); bridge = info.bridge
        publicIp = info.publicIp == 0 ? nil : IPv4Address(info.publicIp).description
    }
    var row: [String] { [id, node, group ?? "-", ip.map { ipLearned == true ? $0 + " (learned)" : $0 } ?? "(dhcp)", mac, vlan.map(String.init) ?? "-", bridge, publicIp ?? "-"] }
    static let header = ["INSTANCE", "NODE", "GROUP", "IP", "MAC", "VLAN", "BRIDGE", "PUBLIC IP"]
}

/// One object of a node's desired state that is not on it (see ApplyReport.Failure).
struct FailureView: Encodable {
    var kind: String, object: String, instance: String?, error: String
    init(_ wire: Vnet_V1_ObjectFailure) {
        kind = wire.kind; object = wire.object; instance = wire.instanceID.isEmpty ? nil : wire.instanceID; error = wire.error
    }
    var text: String { "\(object)\(instance.map { " (\($0))" } ?? ""): \(kind): \(error)" }
}

struct LinkView: Encodable {
    var name: String, kind: String?, master: String?, up: Bool, owner: String
    init(_ wire: Vnet_V1_HostLink) {
        name = wire.name; kind = wire.kind.isEmpty ? nil : wire.kind; master = wire.master.isEmpty ? nil : wire.master
        up = wire.up; owner = wire.vnetOwned ? "vnet" : "host"
    }
    var row: [String] { [name, kind ?? "device", master ?? "-", up ? "up" : "down", owner] }
    static let header = ["LINK", "KIND", "MASTER", "STATE", "OWNER"]
}

/// A VLAN's bring-up check: pending, passed, failed or skipped, and why.
struct VLANCheckView: Encodable {
    var vlan: Int, revision: UInt64, state: String, detail: String?
    init(_ wire: Vnet_V1_VlanCheck) {
        vlan = Int(wire.vlan); revision = wire.revision; state = wire.state; detail = wire.detail.isEmpty ? nil : wire.detail
    }
}

/// A switch port a host heard on an interface (LLDP).
struct SwitchPortView: Encodable {
    var interface: String, label: String, chassisId: String, portId: String, systemName: String?, portDescription: String?
    var portVlan: Int?, vlans: [Int], maxFrameSize: Int?, ttl: Int, heardMsAgo: UInt32
    init?(_ wire: Vnet_V1_LldpNeighbor) {
        guard let neighbor = LLDPNeighbor(wire: wire) else { return nil }
        interface = wire.interface; label = neighbor.label; chassisId = neighbor.chassisID; portId = neighbor.portID
        systemName = neighbor.systemName; portDescription = neighbor.portDescription; portVlan = neighbor.portVLAN
        vlans = neighbor.vlans.keys.sorted(); maxFrameSize = neighbor.maxFrameSize; ttl = neighbor.ttl; heardMsAgo = wire.ageMs
    }
    var text: String {
        var facts = ["chassis \(chassisId)", "port \(portId)"]
        if let portDescription { facts.append("\"\(portDescription)\"") }
        if let portVlan { facts.append("PVID \(portVlan)") }
        if !vlans.isEmpty { facts.append("VLANs " + vlans.map(String.init).joined(separator: ",")) }
        if let maxFrameSize { facts.append("max frame \(maxFrameSize)") }
        return "\(label) on \(interface) (\(facts.joined(separator: ", ")); heard \(String(format: "%.1f", Double(heardMsAgo) / 1000)) s before the last inventory)"
    }
}

struct NodeView: Encodable {
    var id: String, address: String?, state: String, heartbeatAgeMs: UInt64?, desiredRevision: UInt64, appliedRevision: UInt64
    /// The revision the host is applying now (its heartbeats go on meanwhile); nil: none.
    var applyingRevision: UInt64?
    var dhcpd: String?, iptablesRules: Int, driftRepairs: Int, lastDrift: String?
    /// What of the applied revision is not on the host (`failedRevision`), from its apply results and inventories.
    var failedRevision: UInt64?, failures: [FailureView]
    /// With `--detail` (or `describe-node`): the host as its last inventory listed it.
    var interface: String?, bridge: String?, links: [LinkView]?, addresses: [String]?
    /// With `--detail`: the switch port(s) the host heard on VNET_INTERFACE (LLDP).
    var switchPorts: [SwitchPortView]?
    /// With `--detail` (MANAGED): each VLAN's bring-up check with the front end.
    var vlanChecks: [VLANCheckView]?
    init(_ info: Vnet_V1_NodeInfo, detail: Bool = false) {
        id = info.nodeID; address = info.address.isEmpty ? nil : info.address; state = info.state
        heartbeatAgeMs = HostLiveness(rawValue: info.state) == .new ? nil : info.heartbeatAgeMs
        desiredRevision = info.desiredRevision; appliedRevision = info.appliedRevision
        applyingRevision = info.applyingRevision == 0 ? nil : info.applyingRevision
        dhcpd = info.dhcpdState.isEmpty ? nil : info.dhcpdState; iptablesRules = Int(info.iptablesRules)
        driftRepairs = Int(info.driftRepairs); lastDrift = info.lastDrift.isEmpty ? nil : info.lastDrift
        failedRevision = info.failures.isEmpty ? nil : info.failedRevision
        failures = info.failures.map(FailureView.init)
        if detail {
            interface = info.interface.isEmpty ? nil : info.interface; bridge = info.bridge.isEmpty ? nil : info.bridge
            links = info.links.map(LinkView.init); addresses = info.addresses
            switchPorts = info.neighbors.compactMap(SwitchPortView.init)
            vlanChecks = info.vlanChecks.map(VLANCheckView.init)
        }
    }
    var row: [String] {
        [id, address ?? "-", state, heartbeatAgeMs.map { String(format: "%.1fs", Double($0) / 1000) } ?? "never",
         String(desiredRevision), String(appliedRevision), failures.isEmpty ? "-" : String(failures.count),
         dhcpd ?? "-", String(iptablesRules), String(driftRepairs)]
    }
    static let header = ["NODE", "ADDRESS", "STATE", "HEARTBEAT", "DESIRED", "APPLIED", "NOT APPLIED", "DHCPD", "RULES", "DRIFT"]

    /// `nodes --detail`: the row's facts, then what is not applied, the links and the addresses.
    var detailText: String {
        var lines = ["\(id): \(state), desired \(desiredRevision), applied \(appliedRevision)"
                     + (applyingRevision.map { ", applying \($0)" } ?? "")
                     + (interface.map { ", VNET_INTERFACE \($0)" } ?? "") + (bridge.map { ", VNET_BRIDGE \($0)" } ?? "")
                     + ", dhcpd \(dhcpd ?? "-"), \(iptablesRules) iptables rules, \(driftRepairs) drift repairs"]
        if let lastDrift { lines.append("  last drift: \(lastDrift)") }
        if failures.isEmpty {
            lines.append("  every object of the applied state is on the host")
        } else {
            lines.append("  not applied (revision \(failedRevision ?? 0)):")
            lines += failures.map { "    \($0.text)" }
        }
        if let links, !links.isEmpty {
            lines.append("  links:")
            lines += table([LinkView.header] + links.map(\.row)).split(separator: "\n").map { "    " + $0 }
        }
        if let addresses, !addresses.isEmpty { lines.append("  addresses: " + addresses.joined(separator: ", ")) }
        if let vlanChecks, !vlanChecks.isEmpty {
            lines.append("  VLANs checked with the front end when they came up:")
            lines += vlanChecks.map { "    VID \($0.vlan) (revision \($0.revision)): \($0.state)" + ($0.detail.map { ": \($0)" } ?? "") }
        }
        if let switchPorts {
            lines += switchPorts.isEmpty ? ["  switch port: none heard (no LLDP on VNET_INTERFACE)"] : switchPorts.map { "  switch port: " + $0.text }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

struct RuleView: Encodable {
    var `protocol`: String, ports: String?, icmpType: Int?, icmpCode: Int?, source: String
    init(_ rule: Vnet_V1_RuleChange) {
        let traffic = (try? SecurityRule.Traffic(wire: rule.traffic, field: "rule")) ?? .icmp(type: nil, code: nil)
        `protocol` = traffic.protocolName
        switch traffic {
        case .tcp(let range), .udp(let range):
            ports = range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
        case .icmp(let type, let code):
            icmpType = type; icmpCode = code
        case .all:
            break
        }
        source = rule.sourceCidr.isEmpty ? "group \(rule.sourceGroup)" : rule.sourceCidr
    }
    var text: String {
        let what = ports.map { "\(`protocol`) \($0)" } ?? (icmpType.map { "icmp type \($0)\(icmpCode.map { " code \($0)" } ?? "")" } ?? `protocol`)
        return "\(what) from \(source)"
    }
}

struct GroupView: Encodable {
    var user: String, name: String, vlan: Int?, network: String?, instances: Int, rules: [RuleView]
    /// Which of the subnet's networks (VNET_ADDRSPERNET each) the group has: its VLAN in MANAGED is derived from it.
    var networkIndex: Int
    init(_ info: Vnet_V1_GroupInfo) {
        user = info.user; name = info.group; vlan = info.vlan == 0 ? nil : Int(info.vlan); networkIndex = Int(info.networkIndex)
        network = info.network == 0 && info.prefixLength == 0 ? nil : "\(IPv4Address(info.network))/\(info.prefixLength)"
        instances = Int(info.instances); rules = info.rules.map(RuleView.init)
    }
}

struct AddressView: Encodable {
    /// `owner`: the user who allocated it through the EC2 API; nil for the operator's.
    var address: String, instance: String?, owner: String?
    init(_ info: Vnet_V1_AddressInfo) {
        address = IPv4Address(info.address).description; instance = info.instanceID.isEmpty ? nil : info.instanceID
        owner = info.owner.isEmpty ? nil : info.owner
    }
}

struct ChangeView: Encodable {
    var ok = true
    var revision: UInt64
    var affectedNodes: [String]
    var instances: [InstanceView]?
    var groups: [GroupView]?
    var addresses: [AddressView]?
    /// `--wait`: what it found that did not stop the change (a VLAN that does not pass to the front end).
    var warnings: [String]?
    init(_ reply: Vnet_V1_ControlReply) {
        revision = reply.revision; affectedNodes = reply.affectedNodes
        instances = reply.instances.isEmpty ? nil : reply.instances.map(InstanceView.init)
        groups = reply.groups.isEmpty ? nil : reply.groups.map(GroupView.init)
        addresses = reply.addresses.isEmpty ? nil : reply.addresses.map(AddressView.init)
    }
}
