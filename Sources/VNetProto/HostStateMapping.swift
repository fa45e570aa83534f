import SwiftProtobuf
import VNetCore

/// A wire message that decoded but says something this side refuses: the field and why. Such a message is
/// dropped and counted; nothing of it is applied.
public struct WireError: Error, Sendable, CustomStringConvertible, Equatable {
    public var field: String
    public var message: String
    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { "\(field): \(message)" }
}

extension HostNetworkState {
    /// The wire form of this desired state.
    public var wire: Vnet_V1_HostNetworkState {
        var out = Vnet_V1_HostNetworkState()
        out.host = host
        out.role = role.wire
        out.mode = mode.wire
        out.requiredLinks = requiredLinks
        out.vlanDevices = vlanDevices.map { device in
            var d = Vnet_V1_VlanDevice()
            d.name = device.name; d.parent = device.parent; d.vlan = UInt32(device.vlan)
            return d
        }
        out.bridges = bridges.map { bridge in
            var b = Vnet_V1_Bridge()
            b.name = bridge.name; b.ports = bridge.ports
            return b
        }
        out.vifs = vifs.map { vif in
            var v = Vnet_V1_Vif()
            v.name = vif.name; v.bridge = vif.bridge; v.mac = vif.mac.value
            v.instanceID = vif.instance.description; v.createTap = vif.createTap
            return v
        }
        out.addresses = addresses.map(\.wire)
        if let dhcpd { out.dhcpd = dhcpd.wire }
        if let firewall { out.firewall = firewall.wire }
        return out
    }

    /// Reads and checks a wire state; throws naming the first field that is not acceptable.
    public init(wire: Vnet_V1_HostNetworkState) throws(WireError) {
        guard let role = HostRole(wire: wire.role) else {
            throw WireError("state.role", "unspecified")
        }
        guard let mode = NetworkMode(wire: wire.mode) else { throw WireError("state.mode", "unspecified") }
        if let problem = NameRules.hostNameProblem(wire.host) { throw WireError("state.host", problem) }
        self.init(host: wire.host, role: role, mode: mode)
        requiredLinks = try wire.requiredLinks.enumerated().map { index, name throws(WireError) in
            try checkedInterface(name, "state.requiredLinks[\(index)]")
        }
        for (index, device) in wire.vlanDevices.enumerated() {
            let field = "state.vlanDevices[\(index)]"
            guard (2...4094).contains(device.vlan) else { throw WireError(field + ".vlan", "\(device.vlan) is outside 2-4094") }
            vlanDevices.append(.init(name: try checkedInterface(device.name, field + ".name"),
                                     parent: try checkedInterface(device.parent, field + ".parent"), vlan: Int(device.vlan)))
        }
        for (index, bridge) in wire.bridges.enumerated() {
            let field = "state.bridges[\(index)]"
            var ports: [String] = []
            for (portIndex, port) in bridge.ports.enumerated() { ports.append(try checkedInterface(port, field + ".ports[\(portIndex)]")) }
            bridges.append(.init(name: try checkedInterface(bridge.name, field + ".name"), ports: ports))
        }
        for (index, vif) in wire.vifs.enumerated() {
            let field = "state.vifs[\(index)]"
            guard let instance = InstanceID(vif.instanceID) else { throw WireError(field + ".instanceId", "'\(vif.instanceID)' is not an instance id") }
            guard vif.mac >> 48 == 0 else { throw WireError(field + ".mac", "more than 48 bits") }
            vifs.append(.init(name: try checkedInterface(vif.name, field + ".name"), bridge: try checkedInterface(vif.bridge, field + ".bridge"),
                              mac: MACAddress(vif.mac), instance: instance, createTap: vif.createTap))
        }
        for (index, address) in wire.addresses.enumerated() {
            addresses.append(try HostNetworkState.Address(wire: address, field: "state.addresses[\(index)]"))
        }
        if wire.hasDhcpd { dhcpd = try DHCPDConfig(wire: wire.dhcpd) }
        if wire.hasFirewall { firewall = try FirewallConfig(wire: wire.firewall) }
    }
}

func checkedInterface(_ name: String, _ field: String) throws(WireError) -> String {
    if let problem = NameRules.interfaceNameProblem(name) { throw WireError(field, problem) }
    return name
}

func checkedPrefix(_ length: UInt32, _ field: String) throws(WireError) -> Int {
    guard length <= 32 else { throw WireError(field, "prefix length \(length) is over 32") }
    return Int(length)
}

func checkedNetwork(_ address: UInt32, _ length: UInt32, _ field: String) throws(WireError) -> IPv4Network {
    guard let network = IPv4Network(address: IPv4Address(address), prefixLength: try checkedPrefix(length, field)) else {
        throw WireError(field, "\(IPv4Address(address))/\(length) has host bits set")
    }
    return network
}

extension NetworkMode {
    public var wire: Vnet_V1_Mode {
        switch self {
        case .system: .system
        case .staticMode: .static
        case .managed: .managed
        case .managedNoVLAN: .managedNovlan
        }
    }

    public init?(wire: Vnet_V1_Mode) {
        switch wire {
        case .system: self = .system
        case .static: self = .staticMode
        case .managed: self = .managed
        case .managedNovlan: self = .managedNoVLAN
        default: return nil
        }
    }
}

extension HostNetworkState.Address {
    var wire: Vnet_V1_InterfaceAddress {
        var a = Vnet_V1_InterfaceAddress()
        a.device = device; a.address = address.value; a.prefixLength = UInt32(prefixLength); a.broadcast = broadcast?.value ?? 0
        return a
    }

    init(wire: Vnet_V1_InterfaceAddress, field: String) throws(WireError) {
        self.init(device: try checkedInterface(wire.device, field + ".device"), address: IPv4Address(wire.address),
                  prefixLength: try checkedPrefix(wire.prefixLength, field + ".prefixLength"),
                  broadcast: wire.broadcast == 0 ? nil : IPv4Address(wire.broadcast))
    }
}

extension DHCPDConfig {
    var wire: Vnet_V1_Dhcpd {
        var d = Vnet_V1_Dhcpd()
        d.leaseSeconds = UInt32(leaseSeconds)
        d.sharedNetwork = sharedNetwork
        d.interfaces = interfaces
        d.subnets = subnets.map { subnet in
            var s = Vnet_V1_DhcpSubnet()
            s.network = subnet.network.address.value; s.prefixLength = UInt32(subnet.network.prefixLength)
            s.router = subnet.router?.value ?? 0; s.broadcast = subnet.broadcast.value; s.dns = subnet.dns.map(\.value)
            return s
        }
        d.hosts = hosts.map { host in
            var h = Vnet_V1_DhcpHost()
            h.mac = host.mac.value; h.address = host.address.value
            return h
        }
        return d
    }

    init(wire: Vnet_V1_Dhcpd) throws(WireError) {
        var subnets: [Subnet] = []
        for (index, subnet) in wire.subnets.enumerated() {
            let field = "state.dhcpd.subnets[\(index)]"
            subnets.append(Subnet(network: try checkedNetwork(subnet.network, subnet.prefixLength, field + ".network"),
                                  router: subnet.router == 0 ? nil : IPv4Address(subnet.router),
                                  broadcast: IPv4Address(subnet.broadcast), dns: subnet.dns.map(IPv4Address.init)))
        }
        var interfaces: [String] = []
        for (index, name) in wire.interfaces.enumerated() { interfaces.append(try checkedInterface(name, "state.dhcpd.interfaces[\(index)]")) }
        var hosts: [Host] = []
        for (index, host) in wire.hosts.enumerated() {
            guard host.mac >> 48 == 0 else { throw WireError("state.dhcpd.hosts[\(index)].mac", "more than 48 bits") }
            hosts.append(Host(mac: MACAddress(host.mac), address: IPv4Address(host.address)))
        }
        self.init(leaseSeconds: Int(wire.leaseSeconds), sharedNetwork: wire.sharedNetwork, subnets: subnets, hosts: hosts, interfaces: interfaces)
    }
}

extension FirewallConfig {
    var wire: Vnet_V1_Firewall {
        var f = Vnet_V1_Firewall()
        f.subnet = subnet.address.value; f.subnetPrefixLength = UInt32(subnet.prefixLength)
        f.metadataTarget = metadataTarget?.value ?? 0
        f.publicMappings = publicMappings.map { mapping in
            var m = Vnet_V1_PublicMapping()
            m.publicAddress = mapping.publicAddress.value; m.privateAddress = mapping.privateAddress.value
            return m
        }
        f.groups = groups.map { group in
            var g = Vnet_V1_GroupChain()
            g.user = group.group.user; g.group = group.group.name; g.chain = group.chain
            g.network = group.network.address.value; g.prefixLength = UInt32(group.network.prefixLength)
            g.rules = group.rules.map { rule in
                var r = Vnet_V1_FirewallRule()
                r.source = rule.source.address.value; r.sourcePrefixLength = UInt32(rule.source.prefixLength)
                r.traffic = rule.traffic.wire
                return r
            }
            return g
        }
        return f
    }

    init(wire: Vnet_V1_Firewall) throws(WireError) {
        let subnet = try checkedNetwork(wire.subnet, wire.subnetPrefixLength, "state.firewall.subnet")
        var groups: [GroupChain] = []
        for (index, group) in wire.groups.enumerated() {
            let field = "state.firewall.groups[\(index)]"
            guard !group.chain.isEmpty, group.chain.utf8.count <= NameRules.maxChainNameLength,
                  !group.chain.hasPrefix("-"), !group.chain.hasPrefix("!"),
                  group.chain.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
                throw WireError(field + ".chain", "'\(group.chain)' is not a usable iptables chain name")
            }
            var rules: [Rule] = []
            for (ruleIndex, rule) in group.rules.enumerated() {
                let ruleField = field + ".rules[\(ruleIndex)]"
                let traffic = try SecurityRule.Traffic(wire: rule.traffic, field: ruleField)
                rules.append(Rule(source: try checkedNetwork(rule.source, rule.sourcePrefixLength, ruleField + ".source"), traffic: traffic))
            }
            groups.append(GroupChain(group: GroupID(user: group.user, name: group.group), chain: group.chain,
                                     network: try checkedNetwork(group.network, group.prefixLength, field + ".network"), rules: rules))
        }
        self.init(subnet: subnet, groups: groups,
                  publicMappings: wire.publicMappings.map { PublicMapping(publicAddress: IPv4Address($0.publicAddress), privateAddress: IPv4Address($0.privateAddress)) },
                  metadataTarget: wire.metadataTarget == 0 ? nil : IPv4Address(wire.metadataTarget))
    }
}
