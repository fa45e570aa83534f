/// Every change to the cluster's allocations goes through here: networks for groups, addresses and MACs for
/// instances, public addresses. Pure and deterministic: the lowest free network, slot, VNET_MACMAP pair or
/// public address is taken, so the same requests in the same order give the same cluster.
///
/// It refuses what would break an invariant (an address or MAC handed out twice, a group deleted under its
/// instances, a request the mode cannot do) and changes nothing when it refuses.
public struct Allocator: Sendable {
    public let config: VNetConfig
    public private(set) var state: ClusterState
    let layout: NetworkLayout?

    // Occupancy, rebuilt from `state` on init so that a persisted state can be resumed.
    private var networkOwner: [Int: GroupID] = [:]
    private var networkHint = 0
    private var slotsInUse: [Int: [Bool]] = [:]
    private var staticPairInUse: [Bool]
    private var staticHint = 0
    private var publicIndex: [IPv4Address: Int] = [:]
    private var publicHint = 0
    private var addressOwner: [IPv4Address: InstanceID] = [:]
    /// Stored groups whose network lies outside VNET_VLANRANGE (the range was narrowed after they were made):
    /// they keep their networks and VIDs, and the coordinator says so when it starts.
    public private(set) var groupsOutsideVLANRange: [GroupID] = []
    private var macOwner: [MACAddress: InstanceID] = [:]
    private var vifOwner: [String: InstanceID] = [:]  // key "node\u{0}vif"

    /// Resumes from `state`, checking that it is consistent with `config` (every address inside its network,
    /// nothing allocated twice).
    public init(config: VNetConfig, state: ClusterState) throws(ClusterError) {
        self.config = config
        self.layout = config.layout
        self.state = ClusterState(frontend: state.frontend)
        staticPairInUse = Array(repeating: false, count: config.macMap.count)
        for (index, address) in config.publicIPs.enumerated() { publicIndex[address] = index }
        for node in state.nodes.values.sorted(by: { $0.name < $1.name }) { try addNode(node) }
        for group in state.groups.values.sorted(by: { $0.id < $1.id }) {
            try adopt(group)
        }
        // Rules may name any group, so they are checked once every group is in.
        for group in state.groups.values.sorted(by: { $0.id < $1.id }) {
            do { try checkRules(group.rules, of: group.id) } catch { throw error.at("groups[\(group.id)]") }
        }
        for instance in state.instances.values.sorted(by: { $0.id < $1.id }) {
            try adopt(instance)
        }
        for (address, instance) in state.publicIPs.sorted(by: { $0.key < $1.key }) {
            _ = try allocatePublicIP(address, owner: state.publicIPOwners[address] ?? "")
            if let instance { try associate(address, with: instance) }
        }
    }

    public var mode: NetworkMode { config.mode }

    // MARK: nodes

    public mutating func addNode(_ node: ClusterState.Node) throws(ClusterError) {
        if let problem = NameRules.hostNameProblem(node.name) { throw ClusterError(field: "name", problem) }
        if node.name == state.frontend { throw ClusterError(field: "name", "'\(node.name)' is the front end's name") }
        if state.nodes[node.name] != nil { throw ClusterError(field: "name", "node '\(node.name)' is already registered") }
        if let problem = NameRules.interfaceNameProblem(node.interface) { throw ClusterError(field: "interface", problem) }
        if let problem = NameRules.interfaceNameProblem(node.bridge) { throw ClusterError(field: "bridge", problem) }
        if mode == .managed, let layout {
            let longest = "\(node.interface).\(layout.lastVLAN)"
            if longest.utf8.count > NameRules.maxInterfaceNameLength {
                throw ClusterError(field: "interface", "VLAN devices on '\(node.interface)' would be named up to '\(longest)', over the kernel's \(NameRules.maxInterfaceNameLength) characters")
            }
        }
        if mode != .managed, node.bridge == "virbr0" {
            throw ClusterError(field: "bridge", "virbr0 is libvirt's NAT bridge and must not carry instances")
        }
        state.nodes[node.name] = node
    }

    /// Adds a node, or updates the interface and bridge of one already known (an agent re-registering with a
    /// changed eucalyptus.conf).
    public mutating func registerNode(_ node: ClusterState.Node) throws(ClusterError) {
        guard let existing = state.nodes[node.name] else { return try addNode(node) }
        guard existing != node else { return }
        state.nodes[node.name] = nil
        do { try addNode(node) } catch {
            state.nodes[node.name] = existing
            throw error
        }
    }

    // MARK: groups

    private func requireGroups(_ what: String) throws(ClusterError) {
        guard mode.supportsGroupsAndPublicIPs else {
            throw ClusterError("\(what) needs MANAGED or MANAGED-NOVLAN mode; this cluster runs \(mode.rawValue), which has no security groups (see the seed document's list of what SYSTEM and STATIC cannot do)", kind: .unsupportedMode)
        }
    }

    @discardableResult
    public mutating func createGroup(_ id: GroupID, rules: [SecurityRule] = [], description: String = "") throws(ClusterError) -> ClusterState.Group {
        try requireGroups("a security group")
        try checkGroupID(id)
        if state.groups[id] != nil { throw ClusterError(field: "name", "group \(id) already exists", kind: .groupExists) }
        if let problem = NameRules.descriptionProblem(description) { throw ClusterError(field: "description", problem) }
        try checkRules(rules, of: id)
        guard let layout else { throw ClusterError("no network layout (VNET_SUBNET / VNET_ADDRSPERNET)") }
        var index = max(networkHint, layout.allocatable.lowerBound)
        while index < layout.allocatable.upperBound, networkOwner[index] != nil { index += 1 }
        guard index < layout.allocatable.upperBound else {
            let vids = layout.allocatableVLANs.map { "VIDs \($0.lowerBound)-\($0.upperBound)" } ?? "no VID of VNET_VLANRANGE"
            throw ClusterError("no free network: all \(layout.allocatable.count) networks of \(layout.subnet) in the VID range (\(vids)) are held by groups; delete a group, widen VNET_VLANRANGE or use a smaller VNET_ADDRSPERNET", kind: .capacity)
        }
        networkHint = index + 1
        let group = ClusterState.Group(id: id, rules: rules, network: index, description: description)
        networkOwner[index] = id
        state.groups[id] = group
        return group
    }

    private mutating func adopt(_ group: ClusterState.Group) throws(ClusterError) {
        try requireGroups("a security group")
        try checkGroupID(group.id)
        guard let layout, (0..<layout.networkCount).contains(group.network) else {
            throw ClusterError(field: "network", "group \(group.id) holds network \(group.network), outside this layout")
        }
        if let other = networkOwner[group.network] {
            throw ClusterError(field: "network", "network \(group.network) is held by both \(other) and \(group.id)")
        }
        networkOwner[group.network] = group.id
        state.groups[group.id] = group
        if !layout.allocatable.contains(group.network) { groupsOutsideVLANRange.append(group.id) }
        // Rules may name groups adopted later; they are checked once all groups are in (see planner).
    }

    public mutating func deleteGroup(_ id: GroupID) throws(ClusterError) {
        try requireGroups("a security group")
        guard let group = state.groups[id] else { throw ClusterError("no group \(id)", kind: .groupNotFound) }
        if let user = state.instances.values.filter({ $0.group == id }).map(\.id).min() {
            throw ClusterError("group \(id) still has instances (\(user) among them); terminate them first", kind: .groupInUse)
        }
        if let referrer = state.groups.values.filter({ $0.id != id && $0.rules.contains { $0.source == .group(id) } })
            .map(\.id).min() {
            throw ClusterError("group \(referrer) has a rule naming \(id) as its source; revoke it first", kind: .groupInUse)
        }
        state.groups[id] = nil
        networkOwner[group.network] = nil
        slotsInUse[group.network] = nil
        networkHint = min(networkHint, group.network)
        groupsOutsideVLANRange.removeAll { $0 == id }
    }

    public mutating func setRules(of id: GroupID, to rules: [SecurityRule]) throws(ClusterError) {
        try requireGroups("a security group rule")
        guard state.groups[id] != nil else { throw ClusterError("no group \(id)", kind: .groupNotFound) }
        try checkRules(rules, of: id)
        state.groups[id]!.rules = rules
    }

    private func checkGroupID(_ id: GroupID) throws(ClusterError) {
        if let problem = NameRules.userNameProblem(id.user) { throw ClusterError(field: "user", problem) }
        if let problem = NameRules.groupNameProblem(id.name) { throw ClusterError(field: "name", problem) }
    }

    private func checkRules(_ rules: [SecurityRule], of id: GroupID) throws(ClusterError) {
        for (index, rule) in rules.enumerated() {
            if let problem = rule.problem { throw ClusterError(field: "rules[\(index)]", problem) }
            if case .group(let source) = rule.source, source != id, state.groups[source] == nil {
                throw ClusterError(field: "rules[\(index)]", "source group \(source) does not exist", kind: .groupNotFound)
            }
        }
    }

    // MARK: instances

    @discardableResult
    /// `nodeLinks`: the node's links as its last inventory listed them; a vif that is one of the node's own
    /// (its uplink, a bridge, a NIC, loopback) is refused (see `VifRules`).
    public mutating func runInstance(_ id: InstanceID, on node: String, group: GroupID? = nil,
                                     hypervisorVif: String? = nil, nodeLinks: [HostLink] = []) throws(ClusterError) -> ClusterState.Instance {
        if state.instances[id] != nil { throw ClusterError(field: "id", "instance \(id) already exists") }
        guard let host = state.nodes[node] else { throw ClusterError(field: "node", "no node '\(node)' in the cluster") }
        if let vif = hypervisorVif {
            if let problem = NameRules.interfaceNameProblem(vif) { throw ClusterError(field: "vif", problem) }
            if let reason = VifRules.refusal(vif, interface: host.interface, bridge: host.bridge, link: nodeLinks.first { $0.name == vif }) {
                throw ClusterError(field: "vif", "refused: \(reason); an instance's vif is attached to a bridge and let go of when the instance ends, which would cut \(node) off")
            }
            if let other = vifOwner[node + "\u{0}" + vif] {
                throw ClusterError(field: "vif", "vif \(vif) on \(node) already belongs to \(other)")
            }
        }
        var instance: ClusterState.Instance
        switch mode {
        case .system:
            if group != nil { try requireGroups("--group") }
            instance = .init(id: id, node: node, group: nil, address: nil, mac: config.macPrefix.mac(for: id),
                             hypervisorVif: hypervisorVif)
        case .staticMode:
            if group != nil { try requireGroups("--group") }
            var index = staticHint
            while index < staticPairInUse.count, staticPairInUse[index] { index += 1 }
            guard index < staticPairInUse.count else {
                throw ClusterError("no free VNET_MACMAP pair: all \(staticPairInUse.count) are held by running instances; add pairs to VNET_MACMAP or terminate an instance", kind: .capacity)
            }
            staticHint = index + 1
            let pair = config.macMap[index]
            instance = .init(id: id, node: node, group: nil, address: pair.address, mac: pair.mac, hypervisorVif: hypervisorVif)
        case .managed, .managedNoVLAN:
            guard let group else {
                throw ClusterError(field: "group", "\(mode.rawValue) mode puts every instance in a security group; name one")
            }
            guard let owner = state.groups[group], let layout else {
                throw ClusterError(field: "group", "no group \(group)", kind: .groupNotFound)
            }
            var slots = slotsInUse[owner.network] ?? Array(repeating: false, count: layout.instancesPerNetwork)
            guard let slot = slots.firstIndex(of: false) else {
                throw ClusterError(field: "group", "the network of group \(group) (\(layout.network(owner.network)), VLAN \(layout.vlan(ofNetwork: owner.network))) is full: \(layout.instancesPerNetwork) instances; a larger VNET_ADDRSPERNET gives more", kind: .capacity)
            }
            slots[slot] = true
            slotsInUse[owner.network] = slots
            instance = .init(id: id, node: node, group: group,
                             address: layout.instanceAddress(network: owner.network, slot: slot),
                             mac: config.macPrefix.mac(for: id), hypervisorVif: hypervisorVif)
        }
        try record(instance)
        return instance
    }

    /// Takes a persisted instance back in, checking its address against the layout and everything else held.
    private mutating func adopt(_ instance: ClusterState.Instance) throws(ClusterError) {
        guard state.nodes[instance.node] != nil else {
            throw ClusterError(field: "node", "instance \(instance.id) is on unknown node '\(instance.node)'")
        }
        switch mode {
        case .system:
            break
        case .staticMode:
            guard let index = config.macMap.firstIndex(where: { $0.mac == instance.mac && $0.address == instance.address }) else {
                throw ClusterError("instance \(instance.id) holds \(instance.mac)=\(instance.address.map(String.init(describing:)) ?? "none"), which is not a VNET_MACMAP pair")
            }
            staticPairInUse[index] = true
        case .managed, .managedNoVLAN:
            guard let groupID = instance.group, let group = state.groups[groupID], let layout,
                  let address = instance.address, let place = layout.locate(address), place.network == group.network else {
                throw ClusterError("instance \(instance.id)'s address is not a slot of its group's network")
            }
            var slots = slotsInUse[place.network] ?? Array(repeating: false, count: layout.instancesPerNetwork)
            slots[place.slot] = true
            slotsInUse[place.network] = slots
        }
        try record(instance)
    }

    private mutating func record(_ instance: ClusterState.Instance) throws(ClusterError) {
        if let address = instance.address, let other = addressOwner[address] {
            throw ClusterError("address \(address) would be held by both \(other) and \(instance.id)")
        }
        if let other = macOwner[instance.mac] {
            throw ClusterError("MAC \(instance.mac) would be held by both \(other) and \(instance.id)")
        }
        if let address = instance.address { addressOwner[address] = instance.id }
        macOwner[instance.mac] = instance.id
        vifOwner[instance.node + "\u{0}" + instance.vifName] = instance.id
        if mode == .staticMode, let index = config.macMap.firstIndex(where: { $0.mac == instance.mac }) {
            staticPairInUse[index] = true
        }
        state.instances[instance.id] = instance
    }

    /// Frees the instance's address and MAC; a public address associated with it stays allocated, as EC2's
    /// elastic IPs do, but points nowhere.
    @discardableResult
    public mutating func terminateInstance(_ id: InstanceID) throws(ClusterError) -> ClusterState.Instance {
        guard let instance = state.instances.removeValue(forKey: id) else { throw ClusterError("no instance \(id)", kind: .instanceNotFound) }
        if let address = instance.address { addressOwner[address] = nil }
        macOwner[instance.mac] = nil
        vifOwner[instance.node + "\u{0}" + instance.vifName] = nil
        switch mode {
        case .staticMode:
            if let index = config.macMap.firstIndex(where: { $0.mac == instance.mac }) {
                staticPairInUse[index] = false
                staticHint = min(staticHint, index)
            }
        case .managed, .managedNoVLAN:
            if let address = instance.address, let place = layout?.locate(address) {
                slotsInUse[place.network]?[place.slot] = false
            }
        case .system:
            break
        }
        for (address, holder) in state.publicIPs where holder == id { state.publicIPs[address] = .some(nil) }
        return instance
    }

    // MARK: public addresses

    /// Allocates `requested`, or the lowest free VNET_PUBLICIPS address when nil, to `owner` (a user; "" is
    /// the operator's, as vnetctl allocates).
    @discardableResult
    public mutating func allocatePublicIP(_ requested: IPv4Address? = nil, owner: String = "") throws(ClusterError) -> IPv4Address {
        guard mode.supportsGroupsAndPublicIPs else {
            throw ClusterError("public IPs need MANAGED or MANAGED-NOVLAN mode; this cluster runs \(mode.rawValue), which has no elastic IPs", kind: .unsupportedMode)
        }
        if !owner.isEmpty, let problem = NameRules.userNameProblem(owner) { throw ClusterError(field: "user", problem) }
        let address: IPv4Address
        if let requested {
            guard publicIndex[requested] != nil else {
                throw ClusterError("\(requested) is not in VNET_PUBLICIPS", kind: .addressNotFound)
            }
            if state.publicIPs[requested] != nil { throw ClusterError("\(requested) is already allocated", kind: .addressLimit) }
            address = requested
        } else {
            var index = publicHint
            while index < config.publicIPs.count, state.publicIPs[config.publicIPs[index]] != nil { index += 1 }
            guard index < config.publicIPs.count else {
                throw ClusterError("no free public IP: all \(config.publicIPs.count) in VNET_PUBLICIPS are allocated", kind: .addressLimit)
            }
            publicHint = index + 1
            address = config.publicIPs[index]
        }
        state.publicIPs[address] = .some(nil)
        if !owner.isEmpty { state.publicIPOwners[address] = owner }
        return address
    }

    public mutating func associate(_ address: IPv4Address, with instance: InstanceID) throws(ClusterError) {
        guard let holder = state.publicIPs[address] else { throw ClusterError("\(address) is not allocated", kind: .addressNotFound) }
        if let holder, holder != instance { throw ClusterError("\(address) is associated with \(holder); disassociate it first", kind: .addressInUse) }
        guard state.instances[instance] != nil else { throw ClusterError("no instance \(instance)", kind: .instanceNotFound) }
        if let current = state.publicAddressByInstance[instance], current != address {
            throw ClusterError("\(instance) already has public IP \(current)", kind: .addressInUse)
        }
        state.publicIPs[address] = instance
    }

    public mutating func disassociate(_ address: IPv4Address) throws(ClusterError) {
        guard let holder = state.publicIPs[address] else { throw ClusterError("\(address) is not allocated", kind: .addressNotFound) }
        guard holder != nil else { throw ClusterError("\(address) is not associated with any instance", kind: .addressNotFound) }
        state.publicIPs[address] = .some(nil)
    }

    public mutating func releasePublicIP(_ address: IPv4Address) throws(ClusterError) {
        guard let holder = state.publicIPs[address] else { throw ClusterError("\(address) is not allocated", kind: .addressNotFound) }
        if let holder { throw ClusterError("\(address) is associated with \(holder); disassociate it first", kind: .addressInUse) }
        state.publicIPs[address] = nil
        state.publicIPOwners[address] = nil
        if let index = publicIndex[address] { publicHint = min(publicHint, index) }
    }
}
