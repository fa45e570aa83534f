/// The cluster as the coordinator holds it, every allocation made: nodes, groups with their networks,
/// instances with their addresses and MACs, public addresses and what they point at.
///
/// A plain value; `Allocator` is the only code that changes allocations, and `HostPlanner` turns a state
/// into what each host should look like.
public struct ClusterState: Sendable, Equatable {
    public struct Node: Sendable, Equatable {
        public var name: String
        /// The 802.1Q parent on this node (MANAGED): its VNET_INTERFACE.
        public var interface: String
        /// The bridge instances join (SYSTEM, STATIC, MANAGED-NOVLAN): its VNET_BRIDGE.
        public var bridge: String

        public init(name: String, interface: String, bridge: String) {
            self.name = name
            self.interface = interface
            self.bridge = bridge
        }
    }

    public struct Group: Sendable, Equatable {
        public var id: GroupID
        public var rules: [SecurityRule]
        /// Index into the `NetworkLayout`; VLAN tag is index+2.
        public var network: Int
        /// The owner's words for it (EC2's GroupDescription); "" when made without one.
        public var description: String

        public init(id: GroupID, rules: [SecurityRule], network: Int, description: String = "") {
            self.id = id
            self.rules = rules
            self.network = network
            self.description = description
        }
    }

    public struct Instance: Sendable, Equatable {
        public var id: InstanceID
        public var node: String
        /// nil in SYSTEM and STATIC, which have no groups.
        public var group: GroupID?
        /// nil in SYSTEM: an outside DHCP server decides, and the agent learns it.
        public var address: IPv4Address?
        public var mac: MACAddress
        /// The vif the hypervisor created, or nil for a tap the agent creates with the instance's MAC.
        public var hypervisorVif: String?

        public init(id: InstanceID, node: String, group: GroupID?, address: IPv4Address?, mac: MACAddress,
                    hypervisorVif: String? = nil) {
            self.id = id
            self.node = node
            self.group = group
            self.address = address
            self.mac = mac
            self.hypervisorVif = hypervisorVif
        }

        /// The vif's name on the node: the hypervisor's, or `vn-` and the id's eight hex digits (11
        /// characters, within IFNAMSIZ, and the same on every run).
        public var vifName: String { hypervisorVif ?? "vn-" + id.hexDigits }
    }

    /// The front end's host name (its agent's node id).
    public var frontend: String
    public var nodes: [String: Node] = [:]
    public var groups: [GroupID: Group] = [:]
    public var instances: [InstanceID: Instance] = [:]
    /// Allocated public addresses; the value is the instance it is associated with, if any.
    public var publicIPs: [IPv4Address: InstanceID?] = [:]
    /// The user each allocated public address belongs to, when a user (not the operator) allocated it: users
    /// of the EC2 API see and change only their own.
    public var publicIPOwners: [IPv4Address: String] = [:]

    public init(frontend: String) { self.frontend = frontend }

    /// The public address associated with each instance.
    public var publicAddressByInstance: [InstanceID: IPv4Address] {
        var result: [InstanceID: IPv4Address] = [:]
        for (address, instance) in publicIPs { if let instance { result[instance] = address } }
        return result
    }
}
