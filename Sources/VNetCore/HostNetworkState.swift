/// What one host's network should look like: the value an agent is handed and reconciles the kernel to.
///
/// Equatable, so "nothing changed" is `==`; every list is kept sorted, so equal states are equal values and
/// render to identical text.
public struct HostNetworkState: Sendable, Equatable {
    public struct VLANDevice: Sendable, Hashable, Comparable {
        public var name: String
        public var parent: String
        public var vlan: Int
        public static func < (a: Self, b: Self) -> Bool { (a.vlan, a.name) < (b.vlan, b.name) }
        public init(name: String, parent: String, vlan: Int) { self.name = name; self.parent = parent; self.vlan = vlan }
    }

    /// A bridge this project creates and owns, with the non-instance ports it must hold (the 802.1Q device).
    public struct Bridge: Sendable, Hashable, Comparable {
        public var name: String
        public var ports: [String]
        public static func < (a: Self, b: Self) -> Bool { a.name < b.name }
        public init(name: String, ports: [String]) { self.name = name; self.ports = ports }
    }

    /// An instance's interface on the node and the bridge it belongs in.
    public struct Vif: Sendable, Hashable, Comparable {
        public var name: String
        public var bridge: String
        public var mac: MACAddress
        public var instance: InstanceID
        /// True when the agent creates it as a tap; false when the hypervisor does and the agent only
        /// attaches it.
        public var createTap: Bool
        public static func < (a: Self, b: Self) -> Bool { a.name < b.name }
        public init(name: String, bridge: String, mac: MACAddress, instance: InstanceID, createTap: Bool) {
            self.name = name; self.bridge = bridge; self.mac = mac; self.instance = instance; self.createTap = createTap
        }
    }

    /// An address on an interface: a router address (with its network's prefix and broadcast) or a public
    /// address (/32).
    public struct Address: Sendable, Hashable, Comparable {
        public var device: String
        public var address: IPv4Address
        public var prefixLength: Int
        public var broadcast: IPv4Address?
        public static func < (a: Self, b: Self) -> Bool { (a.device, a.address) < (b.device, b.address) }
        public var cidr: String { "\(address)/\(prefixLength)" }
        public init(device: String, address: IPv4Address, prefixLength: Int, broadcast: IPv4Address?) {
            self.device = device; self.address = address; self.prefixLength = prefixLength; self.broadcast = broadcast
        }
    }

    public var host: String
    public var role: HostRole
    public var mode: NetworkMode
    /// Interfaces that must already exist and that this project never creates or deletes: the physical
    /// interface, or the bridge the operator made (VNET_BRIDGE).
    public var requiredLinks: [String] = []
    public var vlanDevices: [VLANDevice] = []
    public var bridges: [Bridge] = []
    public var vifs: [Vif] = []
    public var addresses: [Address] = []
    /// nil: no dhcpd on this host.
    public var dhcpd: DHCPDConfig?
    /// nil: this project leaves the host's iptables alone.
    public var firewall: FirewallConfig?

    public init(host: String, role: HostRole, mode: NetworkMode) {
        self.host = host
        self.role = role
        self.mode = mode
    }

    /// A host as an agent first finds it, before anything was applied.
    public static func empty(host: String, role: HostRole, mode: NetworkMode) -> HostNetworkState {
        HostNetworkState(host: host, role: role, mode: mode)
    }
}

/// dhcpd's configuration as data; `DHCPDConfRenderer` turns it into ISC syntax.
public struct DHCPDConfig: Sendable, Equatable {
    public struct Subnet: Sendable, Hashable, Comparable {
        public var network: IPv4Network
        public var router: IPv4Address?
        public var broadcast: IPv4Address
        public var dns: [IPv4Address]
        public static func < (a: Self, b: Self) -> Bool { a.network.address < b.network.address }
        public init(network: IPv4Network, router: IPv4Address?, broadcast: IPv4Address, dns: [IPv4Address]) {
            self.network = network; self.router = router; self.broadcast = broadcast; self.dns = dns
        }
    }

    public struct Host: Sendable, Hashable, Comparable {
        public var mac: MACAddress
        public var address: IPv4Address
        public static func < (a: Self, b: Self) -> Bool { a.address < b.address }
        public init(mac: MACAddress, address: IPv4Address) { self.mac = mac; self.address = address }
        /// The name of its `host` declaration, in dhcpd.conf and over OMAPI alike: one host per address.
        public var declarationName: String { Self.declarationPrefix + address.description }
        public static let declarationPrefix = "node-"
    }

    /// Eucalyptus 3.4.2's lease time.
    public var leaseSeconds = 86_400
    /// Whether the subnets share one layer-2 segment (STATIC, MANAGED-NOVLAN): declared inside one
    /// `shared-network euca`. In MANAGED each subnet is on its own VLAN interface, and dhcpd refuses one
    /// shared-network matched by several interfaces, so there they are declared alone.
    public var sharedNetwork: Bool
    public var subnets: [Subnet]
    public var hosts: [Host]
    /// The interfaces dhcpd listens on.
    public var interfaces: [String]

    public init(leaseSeconds: Int = 86_400, sharedNetwork: Bool, subnets: [Subnet], hosts: [Host], interfaces: [String]) {
        self.leaseSeconds = leaseSeconds; self.sharedNetwork = sharedNetwork; self.subnets = subnets
        self.hosts = hosts; self.interfaces = interfaces
    }
}

/// The front end's packet filter as data; `IPTablesRenderer` turns it into iptables-restore documents.
public struct FirewallConfig: Sendable, Equatable {
    /// One security group: its chain, its network and the sources it accepts.
    public struct GroupChain: Sendable, Hashable, Comparable {
        public var group: GroupID
        public var chain: String
        public var network: IPv4Network
        public var rules: [Rule]
        public static func < (a: Self, b: Self) -> Bool { a.network.address < b.network.address }
        public init(group: GroupID, chain: String, network: IPv4Network, rules: [Rule]) {
            self.group = group; self.chain = chain; self.network = network; self.rules = rules
        }
    }

    /// A security rule with its source resolved to a network.
    public struct Rule: Sendable, Hashable {
        public var source: IPv4Network
        public var traffic: SecurityRule.Traffic
        public init(source: IPv4Network, traffic: SecurityRule.Traffic) { self.source = source; self.traffic = traffic }
    }

    public struct PublicMapping: Sendable, Hashable, Comparable {
        public var publicAddress: IPv4Address
        public var privateAddress: IPv4Address
        public static func < (a: Self, b: Self) -> Bool { a.publicAddress < b.publicAddress }
        public init(publicAddress: IPv4Address, privateAddress: IPv4Address) {
            self.publicAddress = publicAddress; self.privateAddress = privateAddress
        }
    }

    /// The whole private subnet (VNET_SUBNET/VNET_NETMASK).
    public var subnet: IPv4Network
    public var groups: [GroupChain]
    public var publicMappings: [PublicMapping]
    /// Where 169.254.169.254:80 is sent (VNET_CLOUDIP, port 8773); nil: no metadata redirect.
    public var metadataTarget: IPv4Address?

    public init(subnet: IPv4Network, groups: [GroupChain], publicMappings: [PublicMapping], metadataTarget: IPv4Address?) {
        self.subnet = subnet; self.groups = groups; self.publicMappings = publicMappings; self.metadataTarget = metadataTarget
    }
}
