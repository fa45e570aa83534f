/// Derives every host's desired network state from the cluster state and the front end's config.
///
/// A network is *active* when its group has at least one instance: only active networks get VLAN devices,
/// router addresses, dhcpd subnets and group chains, as Eucalyptus brought a network up with its first
/// instance and down with its last.
public struct HostPlanner: Sendable {
    public let config: VNetConfig

    public init(config: VNetConfig) { self.config = config }

    /// Every host: the front end and each node, keyed by host name.
    public func desiredStates(for cluster: ClusterState) throws(ClusterError) -> [String: HostNetworkState] {
        let index = ClusterIndex(cluster)
        var states: [String: HostNetworkState] = [:]
        states[cluster.frontend] = try frontendState(cluster, index)
        for node in cluster.nodes.values {
            states[node.name] = nodeState(node, cluster, index)
        }
        return states
    }

    /// One host's state; nil when the cluster has no such host.
    public func desiredState(of host: String, in cluster: ClusterState) throws(ClusterError) -> HostNetworkState? {
        let index = ClusterIndex(cluster)
        if host == cluster.frontend { return try frontendState(cluster, index) }
        return cluster.nodes[host].map { nodeState($0, cluster, index) }
    }

    // MARK: nodes

    func nodeState(_ node: ClusterState.Node, _ cluster: ClusterState, _ index: ClusterIndex) -> HostNetworkState {
        var state = HostNetworkState(host: node.name, role: .node, mode: config.mode)
        let instances = index.instancesByNode[node.name] ?? []
        switch config.mode {
        case .system, .staticMode, .managedNoVLAN:
            state.requiredLinks = [node.bridge]
            state.vifs = instances.map { vif($0, bridge: node.bridge) }
        case .managed:
            state.requiredLinks = [node.interface]
            var vlans = Set<Int>()
            for instance in instances {
                guard let group = instance.group.flatMap({ cluster.groups[$0] }), let layout = config.layout else { continue }
                let vlan = layout.vlan(ofNetwork: group.network)
                let bridge = "eucabr\(vlan)"
                state.vifs.append(vif(instance, bridge: bridge))
                if vlans.insert(vlan).inserted {
                    let device = "\(node.interface).\(vlan)"
                    state.vlanDevices.append(.init(name: device, parent: node.interface, vlan: vlan))
                    state.bridges.append(.init(name: bridge, ports: [device]))
                }
            }
        }
        state.vlanDevices.sort()
        state.bridges.sort()
        state.vifs.sort()
        return state
    }

    func vif(_ instance: ClusterState.Instance, bridge: String) -> HostNetworkState.Vif {
        .init(name: instance.vifName, bridge: bridge, mac: instance.mac, instance: instance.id,
              createTap: instance.hypervisorVif == nil)
    }

    // MARK: front end

    func frontendState(_ cluster: ClusterState, _ index: ClusterIndex) throws(ClusterError) -> HostNetworkState {
        var state = HostNetworkState(host: cluster.frontend, role: .frontend, mode: config.mode)
        switch config.mode {
        case .system:
            return state  // no IP management: nothing on the front end
        case .staticMode:
            guard let subnet = config.subnet, let privateInterface = config.privateInterface else { return state }
            state.requiredLinks = [privateInterface]
            state.dhcpd = DHCPDConfig(
                sharedNetwork: true,
                subnets: [.init(network: subnet, router: config.router, broadcast: config.broadcast ?? subnet.broadcast, dns: config.dns)],
                hosts: index.dhcpHosts,
                interfaces: [privateInterface])
            return state
        case .managed, .managedNoVLAN:
            return try managedFrontend(cluster, index, state)
        }
    }

    func managedFrontend(_ cluster: ClusterState, _ index: ClusterIndex, _ initial: HostNetworkState) throws(ClusterError) -> HostNetworkState {
        var state = initial
        guard let layout = config.layout, let privateInterface = config.privateInterface,
              let publicInterface = config.publicInterface else { return state }
        state.requiredLinks = Array(Set([privateInterface, publicInterface])).sorted()
        let activeGroups = index.activeGroups(cluster)
        var subnets: [DHCPDConfig.Subnet] = []
        var interfaces: [String] = []
        for group in activeGroups {
            let network = layout.network(group.network)
            let device: String
            if config.mode == .managed {
                let vlan = layout.vlan(ofNetwork: group.network)
                device = "\(privateInterface).\(vlan)"
                state.vlanDevices.append(.init(name: device, parent: privateInterface, vlan: vlan))
                interfaces.append(device)
            } else {
                device = privateInterface
            }
            state.addresses.append(.init(device: device, address: layout.router(group.network),
                                         prefixLength: layout.prefixLength, broadcast: network.broadcast))
            subnets.append(.init(network: network, router: layout.router(group.network),
                                 broadcast: network.broadcast, dns: config.dns))
        }
        if config.mode == .managedNoVLAN, !activeGroups.isEmpty { interfaces = [privateInterface] }

        var mappings: [FirewallConfig.PublicMapping] = []
        for (publicAddress, holder) in cluster.publicIPs {
            guard let holder, let instance = cluster.instances[holder], let privateAddress = instance.address else { continue }
            mappings.append(.init(publicAddress: publicAddress, privateAddress: privateAddress))
            state.addresses.append(.init(device: publicInterface, address: publicAddress, prefixLength: 32, broadcast: nil))
        }
        if !subnets.isEmpty {
            state.dhcpd = DHCPDConfig(
                sharedNetwork: config.mode == .managedNoVLAN,
                subnets: subnets,
                hosts: index.dhcpHosts,
                interfaces: interfaces)
        }
        state.firewall = try firewall(activeGroups, cluster, layout, mappings.sorted())
        state.vlanDevices.sort()
        state.addresses.sort()
        return state
    }

    func firewall(_ activeGroups: [ClusterState.Group], _ cluster: ClusterState, _ layout: NetworkLayout,
                  _ mappings: [FirewallConfig.PublicMapping]) throws(ClusterError) -> FirewallConfig {
        var chains: [FirewallConfig.GroupChain] = []
        var chainOwner: [String: GroupID] = [:]
        for group in activeGroups {
            let chain = ChainName.forGroup(group.id)
            if let other = chainOwner[chain] {
                throw ClusterError("groups \(other) and \(group.id) both map to iptables chain \(chain); rename one")
            }
            chainOwner[chain] = group.id
            var rules: [FirewallConfig.Rule] = []
            for (position, rule) in group.rules.enumerated() {
                let source: IPv4Network
                switch rule.source {
                case .cidr(let network): source = network
                case .group(let other):
                    guard let sourceGroup = cluster.groups[other] else {
                        throw ClusterError(field: "groups[\(group.id)].rules[\(position)]", "source group \(other) does not exist")
                    }
                    source = layout.network(sourceGroup.network)
                }
                rules.append(.init(source: source, traffic: rule.traffic))
            }
            chains.append(.init(group: group.id, chain: chain, network: layout.network(group.network), rules: rules))
        }
        return FirewallConfig(subnet: layout.subnet, groups: chains.sorted(), publicMappings: mappings,
                              metadataTarget: config.cloudIP)
    }
}

/// Lookups the planner needs more than once, built in one pass so that planning stays linear in the
/// cluster's size.
struct ClusterIndex {
    var instancesByNode: [String: [ClusterState.Instance]] = [:]
    var instanceCountByGroup: [GroupID: Int] = [:]
    let sortedInstances: [ClusterState.Instance]
    /// One fixed-address entry per instance that has an address, by address.
    var dhcpHosts: [DHCPDConfig.Host] {
        sortedInstances.compactMap { instance in instance.address.map { DHCPDConfig.Host(mac: instance.mac, address: $0) } }.sorted()
    }

    init(_ cluster: ClusterState) {
        sortedInstances = cluster.instances.values.sorted { $0.id < $1.id }
        for instance in sortedInstances {
            instancesByNode[instance.node, default: []].append(instance)
            if let group = instance.group { instanceCountByGroup[group, default: 0] += 1 }
        }
    }

    /// Groups with at least one instance, by network index.
    func activeGroups(_ cluster: ClusterState) -> [ClusterState.Group] {
        cluster.groups.values.filter { instanceCountByGroup[$0.id, default: 0] > 0 }.sorted { $0.network < $1.network }
    }
}
