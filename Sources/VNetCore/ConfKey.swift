/// The VNET_* keys of eucalyptus.conf that this project reads, and for each mode and role whether it is
/// required, optional or ignored.
///
/// The table follows the seed document's per-mode lists (front end and node). Keys the document marks with
/// '*' (VNET_DHCPUSER, VNET_PUBLICIPS) are optional here: dhcpd may run as root, and a cluster may have no
/// elastic IPs. VNET_PUBINTERFACE / VNET_PRIVINTERFACE (Eucalyptus 2+) stand in for VNET_INTERFACE.
public enum ConfKey: String, CaseIterable, Sendable {
    case mode = "VNET_MODE"
    case interface = "VNET_INTERFACE"
    case publicInterface = "VNET_PUBINTERFACE"
    case privateInterface = "VNET_PRIVINTERFACE"
    case bridge = "VNET_BRIDGE"
    case dhcpDaemon = "VNET_DHCPDAEMON"
    case dhcpUser = "VNET_DHCPUSER"
    case subnet = "VNET_SUBNET"
    case netmask = "VNET_NETMASK"
    case broadcast = "VNET_BROADCAST"
    case router = "VNET_ROUTER"
    case dns = "VNET_DNS"
    case macMap = "VNET_MACMAP"
    case addressesPerNetwork = "VNET_ADDRSPERNET"
    case publicIPs = "VNET_PUBLICIPS"
    case macPrefix = "VNET_MACPREFIX"
    case cloudIP = "VNET_CLOUDIP"
    /// This project's (like Eucalyptus 3's global_min/max_network_tag): the VIDs groups get, "FIRST-LAST".
    case vlanRange = "VNET_VLANRANGE"
    /// This project's: the MTU the instance networks are expected to carry, which `verify-vlan --mtu` holds every
    /// path to (default: the front end's VNET_INTERFACE MTU). vnet sets no MTU itself.
    case mtu = "VNET_MTU"
    /// This project's bus (not Eucalyptus'): where the coordinator listens, and where agents find it.
    case busListen = "VNET_BUS_LISTEN"
    /// A list (comma- or space-separated) when several coordinators share a PostgreSQL store.
    case busCoordinator = "VNET_BUS_COORDINATOR"
    /// Where the coordinator keeps its state: "sqlite" (default) or postgresql://USER@HOST[:PORT]/DB.
    case busStore = "VNET_BUS_STORE"

    public enum Use: Sendable { case required, optional, ignored }

    public func use(mode: NetworkMode, role: HostRole) -> Use {
        let managed = mode.supportsGroupsAndPublicIPs
        switch (self, role) {
        case (.mode, _):
            return .required
        case (.busListen, .frontend), (.busCoordinator, _), (.busStore, .frontend):
            return .optional
        case (.busListen, .node), (.busStore, .node):
            return .ignored
        // VNET_INTERFACE's requirement is checked together with its two overrides (see ConfigValidator).
        case (.interface, .frontend), (.privateInterface, .frontend):
            return mode == .system ? .ignored : .optional
        case (.publicInterface, .frontend):
            return managed ? .optional : .ignored
        case (.interface, .node), (.privateInterface, .node):
            return mode == .managed ? .optional : .ignored
        case (.publicInterface, .node):
            return .ignored
        case (.bridge, .node):
            return mode == .managed ? .ignored : .required
        case (.bridge, .frontend):
            return .ignored  // the seed: "VNET_BRIDGE ... is ignored by the front end"
        case (.dhcpDaemon, .frontend), (.subnet, .frontend), (.netmask, .frontend), (.dns, .frontend):
            return mode == .system ? .ignored : .required
        case (.dhcpUser, .frontend):
            return mode == .system ? .ignored : .optional
        case (.broadcast, .frontend), (.router, .frontend), (.macMap, .frontend):
            return mode == .staticMode ? .required : .ignored
        case (.addressesPerNetwork, .frontend):
            return managed ? .required : .ignored
        case (.vlanRange, .frontend):
            return managed ? .optional : .ignored
        case (.mtu, .frontend):
            return .optional  // verify-vlan --mtu runs in every mode (the untagged control is SYSTEM's network)
        case (.publicIPs, .frontend), (.cloudIP, .frontend):
            return managed ? .optional : .ignored
        case (.macPrefix, .frontend):
            return mode == .staticMode ? .ignored : .optional  // STATIC takes MACs from VNET_MACMAP
        case (_, .node):
            return .ignored  // a node learns everything else from the coordinator's intents
        }
    }

    /// Why the mode ignores the key, for the warning.
    func ignoredReason(mode: NetworkMode, role: HostRole) -> String {
        switch (self, role) {
        case (.bridge, .frontend): return "the front end does not bridge instances; VNET_BRIDGE is read on nodes"
        case (.broadcast, .frontend), (.router, .frontend):
            return mode.carvesNetworks
                ? "\(mode.rawValue) derives each network's broadcast and router from VNET_SUBNET and VNET_ADDRSPERNET"
                : "only STATIC uses it"
        case (.macPrefix, .frontend): return "STATIC takes every MAC from VNET_MACMAP"
        case (_, .node): return "a node in \(mode.rawValue) mode does not use it (it is front-end configuration)"
        default: return "\(mode.rawValue) mode does not use it on the \(role == .frontend ? "front end" : "node")"
        }
    }
}
