/// Builds a `ClusterState` from a `Scenario` by running its requests through the `Allocator`: nodes, then
/// groups, then instances, then public addresses, each in file order. Errors name the scenario field.
public enum ScenarioLoader {
    /// The seed document assumes this bridge name when none is given ("the bridge is br0 from here on").
    public static let defaultBridge = "br0"
    public static let defaultFrontend = "frontend"

    public static func load(_ scenario: Scenario, config: VNetConfig) throws(ClusterError) -> ClusterState {
        let frontend = scenario.frontend ?? defaultFrontend
        if let problem = NameRules.hostNameProblem(frontend) { throw ClusterError(field: "frontend", problem) }
        var allocator = try Allocator(config: config, state: ClusterState(frontend: frontend))
        for (index, node) in scenario.nodes.enumerated() {
            let entry = ClusterState.Node(name: node.name,
                                          interface: node.interface ?? config.privateInterface ?? "eth0",
                                          bridge: node.bridge ?? defaultBridge)
            do { try allocator.addNode(entry) } catch { throw error.at("nodes[\(index)]") }
        }
        let groups = scenario.groups ?? []
        // Groups first without rules, so a rule may name any group of the file, then their rules.
        for (index, group) in groups.enumerated() {
            do { try allocator.createGroup(GroupID(user: group.user, name: group.name)) } catch { throw error.at("groups[\(index)]") }
        }
        for (index, group) in groups.enumerated() {
            let id = GroupID(user: group.user, name: group.name)
            var rules: [SecurityRule] = []
            for (position, rule) in (group.rules ?? []).enumerated() {
                do { rules.append(try securityRule(rule, owner: id)) } catch { throw error.at("groups[\(index)].rules[\(position)]") }
            }
            do { try allocator.setRules(of: id, to: rules) } catch { throw error.at("groups[\(index)]") }
        }
        for (index, instance) in (scenario.instances ?? []).enumerated() {
            do throws(ClusterError) {
                guard let id = InstanceID(instance.id) else {
                    throw ClusterError(field: "id", "'\(instance.id)' is not an instance id (i- followed by 8 hex digits)")
                }
                let group = try instance.group.map { text throws(ClusterError) in try groupID(text, field: "group") }
                try allocator.runInstance(id, on: instance.node, group: group, hypervisorVif: instance.vif)
            } catch { throw error.at("instances[\(index)]") }
        }
        for (index, entry) in (scenario.publicIPs ?? []).enumerated() {
            do throws(ClusterError) {
                var requested: IPv4Address?
                if entry.address != "auto" {
                    guard let address = IPv4Address(entry.address) else {
                        throw ClusterError(field: "address", "'\(entry.address)' is neither \"auto\" nor an IPv4 address")
                    }
                    requested = address
                }
                let address = try allocator.allocatePublicIP(requested)
                if let text = entry.instance {
                    guard let id = InstanceID(text) else { throw ClusterError(field: "instance", "'\(text)' is not an instance id") }
                    do { try allocator.associate(address, with: id) } catch { throw error.at("instance") }
                }
            } catch { throw error.at("publicIPs[\(index)]") }
        }
        return allocator.state
    }

    public static func groupID(_ text: String, field: String) throws(ClusterError) -> GroupID {
        guard let id = GroupID(text) else {
            throw ClusterError(field: field, "'\(text)' is not a group; write it as user/name")
        }
        return id
    }

    /// A rule from its textual parts (the scenario's and the control API's), checked.
    public static func securityRule(_ rule: Scenario.Rule, owner: GroupID) throws(ClusterError) -> SecurityRule {
        var ports: ClosedRange<Int>?
        if let text = rule.ports {
            let ends = text.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count <= 2, let low = Int(ends[0]), let high = Int(ends.last!), low <= high else {
                throw ClusterError(field: "ports", "'\(text)' is not a port or a range low-high")
            }
            ports = low...high
        }
        let traffic = try SecurityRule.Traffic(protocolName: rule.protocol, ports: ports, icmpType: rule.icmpType, icmpCode: rule.icmpCode)
        return SecurityRule(traffic, from: try source(cidr: rule.source, group: rule.sourceGroup, owner: owner))
    }

    /// A rule's source from its textual parts: a network, or a group ("user/name", or "name" of the owner's user).
    public static func source(cidr: String?, group: String?, owner: GroupID) throws(ClusterError) -> SecurityRule.Source {
        let source: SecurityRule.Source
        switch (cidr, group) {
        case (let cidr?, nil):
            guard let network = IPv4Network(cidr) else {
                throw ClusterError(field: "source", "'\(cidr)' is not a network a.b.c.d/n with no host bits set")
            }
            source = .cidr(network)
        case (nil, let group?):
            // A bare name means a group of the same user, as EC2's "source group" does.
            source = .group(group.contains("/") ? try groupID(group, field: "sourceGroup") : GroupID(user: owner.user, name: group))
        case (nil, nil):
            throw ClusterError(field: "source", "a rule needs a source: a network (source) or a group (sourceGroup)")
        case (_?, _?):
            throw ClusterError(field: "sourceGroup", "a rule has either source or sourceGroup, not both")
        }
        return source
    }
}
