/// A validated eucalyptus.conf: every value parsed and checked. Built only by `ConfigValidator`, so code that
/// holds one can rely on the mode's required keys being present and consistent.
public struct VNetConfig: Sendable, Equatable {
    public struct StaticMapping: Sendable, Equatable {
        public var mac: MACAddress
        public var address: IPv4Address
    }

    public var mode: NetworkMode
    public var role: HostRole
    /// Toward the nodes: VNET_PRIVINTERFACE, else VNET_INTERFACE. The 802.1Q parent in MANAGED.
    public var privateInterface: String?
    /// Where public addresses are added: VNET_PUBINTERFACE, else VNET_INTERFACE.
    public var publicInterface: String?
    public var bridge: String?
    public var dhcpDaemon: String?
    public var dhcpUser: String?
    public var subnet: IPv4Network?
    public var broadcast: IPv4Address?
    public var router: IPv4Address?
    public var dns: [IPv4Address] = []
    public var macMap: [StaticMapping] = []
    public var addressesPerNetwork: Int?
    public var publicIPs: [IPv4Address] = []
    public var macPrefix: MACPrefix = .eucalyptusDefault
    public var cloudIP: IPv4Address?
    /// VNET_VLANRANGE: the VIDs new groups get their networks from.
    public var vlanRange: ClosedRange<Int> = NetworkLayout.defaultVLANRange
    /// VNET_MTU: what `verify-vlan --mtu` expects every path to carry; nil: the front end's interface MTU.
    public var mtu: Int?
    /// The MTUs VNET_MTU may give: IPv4's least (RFC 791) to what an Ethernet frame's size can say.
    public static let mtuRange = 68...65535

    public init(mode: NetworkMode, role: HostRole) {
        self.mode = mode
        self.role = role
    }

    /// The carving of the subnet into networks, in the modes that carve it.
    public var layout: NetworkLayout? {
        guard mode.carvesNetworks, let subnet, let addressesPerNetwork else { return nil }
        return NetworkLayout(subnet: subnet, addressesPerNetwork: addressesPerNetwork, vlanRange: vlanRange)
    }
}
