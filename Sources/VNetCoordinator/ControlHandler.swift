import VNetCore
import VNetProto

/// Carries out one control request against the allocator. Pure: no sockets, no store. A request that fails
/// leaves the allocator as it was (multi-step requests undo their first steps).
public struct ControlHandler: Sendable {
    public let config: VNetConfig
    public static let defaultUser = "admin"
    public static let defaultGroup = "default"

    public init(config: VNetConfig) { self.config = config }

    /// What the event loop needs besides the allocator to answer read requests.
    public struct View: Sendable {
        public var nodes: [Vnet_V1_NodeInfo] = []
        public var status = Vnet_V1_Status()
        /// SYSTEM mode: addresses nodes learned, by instance (used only when the instance is on that node
        /// with that MAC).
        public var learned: [InstanceID: Learned] = [:]
        /// Each node's links as its last inventory listed them (a vif that is one of them may be refused).
        public var links: [String: [HostLink]] = [:]
        public init() {}

        public struct Learned: Sendable, Equatable {
            public var node: String
            public var mac: MACAddress
            public var address: IPv4Address
            public init(node: String, mac: MACAddress, address: IPv4Address) {
                self.node = node
                self.mac = mac
                self.address = address
            }
        }
    }

    /// Returns the reply (revision and affected nodes are filled in by the caller after commit) and whether
    /// the request changed the cluster.
    public func handle(_ request: Vnet_V1_ControlRequest, _ allocator: inout Allocator, view: View) -> (Vnet_V1_ControlReply, Bool) {
        var reply = Vnet_V1_ControlReply()
        reply.requestID = request.requestID
        do throws(ClusterError) {
            let changed = try perform(request, &allocator, view, &reply)
            reply.ok = true
            return (reply, changed)
        } catch {
            reply.ok = false
            // The field prefix names a path in a file; for a command line the message alone reads right.
            reply.error = error.message
            reply.errorKind = error.kind.rawValue
            return (reply, false)
        }
    }

    /// The hosts a request's change can reach, when the request alone says: a run or a terminate changes its
    /// node and the front end (which serves every instance's address and rules), never another node. nil: any
    /// host. A reply names, of the hosts its batch changed, those its request could reach (for `--wait`);
    /// naming every host of a 1000-request batch in each of 1000 replies was megabytes to encode.
    public static func reachableHosts(of request: Vnet_V1_ControlRequest, in state: ClusterState) -> Set<String>? {
        switch request.op {
        case .runInstance(let run):
            return [run.node, state.frontend]
        case .terminateInstance(let ref):
            guard let id = InstanceID(ref.instanceID), let node = state.instances[id]?.node else { return nil }
            return [node, state.frontend]
        default:
            return nil
        }
    }

    /// Whether `request` reads the view's table of nodes, learned addresses or status (the rest read only
    /// the nodes' links).
    public static func needsNodeTable(_ request: Vnet_V1_ControlRequest) -> Bool {
        switch request.op {
        case .status, .listNodes, .describeInstances: true
        default: false
        }
    }

    func perform(_ request: Vnet_V1_ControlRequest, _ allocator: inout Allocator, _ view: View,
                 _ reply: inout Vnet_V1_ControlReply) throws(ClusterError) -> Bool {
        guard let op = request.op else { throw ClusterError("empty request") }
        switch op {
        case .verifyVlan, .diagnose:
            // Cluster operations over the agents, run by the coordinator's loop (VLANVerificationRun, DiagnosisRun).
            throw ClusterError("verify-vlan and diagnose are run by the coordinator's loop, not here")
        case .status:
            reply.status = view.status
            return false
        case .listNodes:
            reply.nodes = view.nodes
            return false
        case .describeInstances:
            reply.instances = instanceInfos(allocator.state, learned: view.learned)
            return false
        case .describeGroups:
            reply.groups = groupInfos(allocator.state)
            return false
        case .describeAddresses:
            reply.addresses = allocator.state.publicIPs.sorted { $0.key < $1.key }.map { address, holder in
                var info = Vnet_V1_AddressInfo()
                info.address = address.value
                info.instanceID = holder?.description ?? ""
                info.owner = allocator.state.publicIPOwners[address] ?? ""
                return info
            }
            return false
        case .runInstance(let run):
            try runInstance(run, &allocator, view, &reply)
            return true
        case .terminateInstance(let ref):
            let id = try instanceID(ref.instanceID)
            try allocator.terminateInstance(id)
            return true
        case .createGroup(let ref):
            let group = try allocator.createGroup(try groupID(ref.user, ref.group), description: ref.description_p)
            reply.groups = [groupInfo(group, instances: 0)]
            return true
        case .deleteGroup(let ref):
            try allocator.deleteGroup(try groupID(ref.user, ref.group))
            return true
        case .authorize(let change):
            try changeRules(of: change.user, change.group, [change], adding: true, &allocator)
            return true
        case .revoke(let change):
            try changeRules(of: change.user, change.group, [change], adding: false, &allocator)
            return true
        case .authorizeRules(let changes):
            try changeRules(of: changes.user, changes.group, changes.rules, adding: true, &allocator)
            return true
        case .revokeRules(let changes):
            try changeRules(of: changes.user, changes.group, changes.rules, adding: false, &allocator)
            return true
        case .allocateAddress(let ref):
            let address = try allocator.allocatePublicIP(ref.address == 0 ? nil : IPv4Address(ref.address), owner: ref.user)
            var info = Vnet_V1_AddressInfo()
            info.address = address.value
            info.owner = ref.user
            reply.addresses = [info]
            return true
        case .associateAddress(let association):
            let address = IPv4Address(association.address), id = try instanceID(association.instanceID)
            try checkOwner(of: address, association.user, allocator.state)
            if !association.user.isEmpty, allocator.state.instances[id]?.group?.user != association.user {
                // Another user's instance is, for this user, not there at all (as EC2 answers).
                throw ClusterError("no instance \(id)", kind: .instanceNotFound)
            }
            try allocator.associate(address, with: id)
            return true
        case .disassociateAddress(let ref):
            try checkOwner(of: IPv4Address(ref.address), ref.user, allocator.state)
            try allocator.disassociate(IPv4Address(ref.address))
            return true
        case .releaseAddress(let ref):
            try checkOwner(of: IPv4Address(ref.address), ref.user, allocator.state)
            try allocator.releasePublicIP(IPv4Address(ref.address))
            return true
        }
    }

    /// Adds (authorize) or removes (revoke) every rule of `changes`, or none: a duplicate or a missing rule
    /// anywhere in the list refuses the whole request, as EC2 does.
    func changeRules(of user: String, _ name: String, _ changes: [Vnet_V1_RuleChange], adding: Bool, _ allocator: inout Allocator) throws(ClusterError) {
        let id = try groupID(user, name)
        guard let group = allocator.state.groups[id] else { throw ClusterError("no group \(id)", kind: .groupNotFound) }
        guard !changes.isEmpty else { throw ClusterError("no rule given") }
        var rules = group.rules
        for (index, change) in changes.enumerated() {
            let rule: SecurityRule
            do { rule = try securityRule(change, owner: id) } catch { throw changes.count == 1 ? error : error.at("rules[\(index)]") }
            if adding {
                guard !rules.contains(rule) else { throw ClusterError("group \(id) already has the rule \(rule)", kind: .ruleExists) }
                rules.append(rule)
            } else {
                guard let index = rules.firstIndex(of: rule) else { throw ClusterError("group \(id) has no rule \(rule)", kind: .ruleNotFound) }
                rules.remove(at: index)
            }
        }
        try allocator.setRules(of: id, to: rules)
    }

    /// A user names only its own addresses: another's, or the operator's, is not found for it.
    func checkOwner(of address: IPv4Address, _ user: String, _ state: ClusterState) throws(ClusterError) {
        guard !user.isEmpty, state.publicIPs[address] != nil else { return }
        if state.publicIPOwners[address] != user { throw ClusterError("\(address) is not allocated to \(user)", kind: .addressNotFound) }
    }

    func runInstance(_ run: Vnet_V1_RunInstance, _ allocator: inout Allocator, _ view: View, _ reply: inout Vnet_V1_ControlReply) throws(ClusterError) {
        let id = try instanceID(run.instanceID)
        var group: GroupID?
        var createdGroup = false
        if config.mode.supportsGroupsAndPublicIPs {
            let id = try groupID(run.user, run.group.isEmpty ? Self.defaultGroup : run.group)
            // EC2 gives every account a "default" group; it is made on first use.
            if allocator.state.groups[id] == nil, id.name == Self.defaultGroup {
                try allocator.createGroup(id)
                createdGroup = true
            }
            group = id
        } else if !run.group.isEmpty || !run.publicIp.isEmpty {
            throw ClusterError("\(run.group.isEmpty ? "public IPs" : "security groups") need MANAGED or MANAGED-NOVLAN mode; this cluster runs \(config.mode.rawValue)")
        }
        do {
            try allocator.runInstance(id, on: run.node, group: group, hypervisorVif: run.vif.isEmpty ? nil : run.vif,
                                      nodeLinks: view.links[run.node] ?? [])
        } catch {
            if createdGroup, let group { try? allocator.deleteGroup(group) }
            throw error
        }
        if !run.publicIp.isEmpty {
            do throws(ClusterError) {
                let requested: IPv4Address?
                if run.publicIp == "auto" { requested = nil } else {
                    guard let address = IPv4Address(run.publicIp) else { throw ClusterError("'\(run.publicIp)' is neither auto nor an IPv4 address") }
                    requested = address
                }
                let address = try allocator.allocatePublicIP(requested)
                do { try allocator.associate(address, with: id) } catch {
                    try? allocator.releasePublicIP(address)
                    throw error
                }
            } catch {
                _ = try? allocator.terminateInstance(id)
                if createdGroup, let group { try? allocator.deleteGroup(group) }
                throw error
            }
        }
        if let instance = allocator.state.instances[id] {
            // Only this instance is described: the reply must not cost more as the cluster grows.
            let publicIP = allocator.state.publicIPs.first { $0.value == id }?.key
            reply.instances = [instanceInfo(instance, allocator.state, publicIP: publicIP)]
        }
    }

    func instanceID(_ text: String) throws(ClusterError) -> InstanceID {
        guard let id = InstanceID(text) else { throw ClusterError("'\(text)' is not an instance id (i- followed by 8 hex digits)") }
        return id
    }

    func groupID(_ user: String, _ name: String) throws(ClusterError) -> GroupID {
        guard !name.isEmpty else { throw ClusterError("a group name is required") }
        return GroupID(user: user.orDefault(Self.defaultUser), name: name)
    }

    func securityRule(_ change: Vnet_V1_RuleChange, owner: GroupID) throws(ClusterError) -> SecurityRule {
        let traffic: SecurityRule.Traffic
        do { traffic = try SecurityRule.Traffic(wire: change.traffic, field: "rule") } catch { throw ClusterError(error.message) }
        return SecurityRule(traffic, from: try ScenarioLoader.source(cidr: change.sourceCidr.isEmpty ? nil : change.sourceCidr,
                                                                   group: change.sourceGroup.isEmpty ? nil : change.sourceGroup, owner: owner))
    }

    // MARK: descriptions

    public func instanceInfos(_ state: ClusterState, learned: [InstanceID: View.Learned] = [:]) -> [Vnet_V1_InstanceInfo] {
        let publicByInstance = state.publicAddressByInstance
        return state.instances.values.sorted { $0.id < $1.id }.map { instance in
            var info = instanceInfo(instance, state, publicIP: publicByInstance[instance.id])
            if instance.address == nil, let seen = learned[instance.id], seen.node == instance.node, seen.mac == instance.mac {
                info.address = seen.address.value
                info.addressLearned = true
            }
            return info
        }
    }

    func instanceInfo(_ instance: ClusterState.Instance, _ state: ClusterState, publicIP: IPv4Address?) -> Vnet_V1_InstanceInfo {
        var info = Vnet_V1_InstanceInfo()
        info.instanceID = instance.id.description
        info.node = instance.node
        info.group = instance.group?.description ?? ""
        info.address = instance.address?.value ?? 0
        info.mac = instance.mac.value
        info.publicIp = publicIP?.value ?? 0
        if config.mode == .managed, let network = instance.group.flatMap({ state.groups[$0]?.network }), let layout = config.layout {
            info.vlan = UInt32(layout.vlan(ofNetwork: network))
            info.bridge = "eucabr\(info.vlan)"
        } else {
            info.bridge = state.nodes[instance.node]?.bridge ?? ""
        }
        return info
    }

    public func groupInfos(_ state: ClusterState) -> [Vnet_V1_GroupInfo] {
        var counts: [GroupID: UInt32] = [:]
        for instance in state.instances.values { if let group = instance.group { counts[group, default: 0] += 1 } }
        return state.groups.values.sorted { $0.id < $1.id }.map { groupInfo($0, instances: counts[$0.id] ?? 0) }
    }

    func groupInfo(_ group: ClusterState.Group, instances: UInt32) -> Vnet_V1_GroupInfo {
        var info = Vnet_V1_GroupInfo()
        info.user = group.id.user
        info.group = group.id.name
        info.networkIndex = UInt32(group.network)
        info.instances = instances
        info.description_p = group.description
        if let layout = config.layout {
            // A VLAN tag only in MANAGED; MANAGED-NOVLAN carves networks but tags nothing.
            if config.mode == .managed { info.vlan = UInt32(layout.vlan(ofNetwork: group.network)) }
            let network = layout.network(group.network)
            info.network = network.address.value
            info.prefixLength = UInt32(network.prefixLength)
        }
        info.rules = group.rules.map { rule in
            var change = Vnet_V1_RuleChange()
            change.traffic = rule.traffic.wire
            switch rule.source {
            case .cidr(let network): change.sourceCidr = network.description
            case .group(let source): change.sourceGroup = source.description
            }
            return change
        }
        return info
    }
}

extension String {
    func orDefault(_ fallback: String) -> String { isEmpty ? fallback : self }
}
