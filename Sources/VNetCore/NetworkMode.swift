/// Eucalyptus' four networking modes (VNET_MODE).
public enum NetworkMode: String, CaseIterable, Sendable, Codable {
    case system = "SYSTEM"
    case staticMode = "STATIC"
    case managed = "MANAGED"
    case managedNoVLAN = "MANAGED-NOVLAN"

    /// Security groups, elastic IPs and the metadata service exist only in the managed modes; the seed
    /// document lists them as what SYSTEM and STATIC cannot do.
    public var supportsGroupsAndPublicIPs: Bool { self == .managed || self == .managedNoVLAN }

    /// Whether the cluster's private subnet is carved into VNET_ADDRSPERNET-sized networks.
    public var carvesNetworks: Bool { supportsGroupsAndPublicIPs }

    /// Only MANAGED puts each network on its own 802.1Q VLAN.
    public var usesVLANs: Bool { self == .managed }

    public static var validList: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Which side of the cluster a config file is for: the front end (cluster controller) or a node.
public enum HostRole: String, CaseIterable, Sendable, Codable {
    case frontend
    case node
}
