import VNetCore

/// How an agent runs its side of a VLAN verification (the Linux prober: raw packet sockets). Called on a
/// thread of its own, so the agent keeps heartbeating while it probes.
public protocol VLANProbing: AnyObject, Sendable {
    func probe(_ request: VLANProbeRequest) throws -> VLANProbeOutcome
}

/// One host's part of a verification, as the coordinator's probe command gave it.
public struct VLANProbeRequest: Sendable {
    public var method: VLANProbeMethod
    /// The interface to probe from (VNET_INTERFACE) and this host's name.
    public var interface: String
    public var name: String
    /// Every participant in the coordinator's order, this host among them.
    public var peers: [(name: String, mac: MACAddress)]
    public var vlans: [Int]
    public var count: Int
    /// Seconds of probing and answering at most, after `listenFirst` seconds of answering only.
    public var duration: Double
    public var listenFirst: Double
    /// `--mtu`: also search the largest frame to each peer on each VID, trying `expectedMTU` early.
    public var mtu: Bool
    public var expectedMTU: Int?
    /// `--dhcp`: also ask for DHCP offers on every VID and untagged, and report every server reply seen.
    public var dhcp: Bool
    /// A star: this host probes only the hub (the hub probes every host), with no broadcast round; nil: every peer.
    public var hub: String?

    public init(method: VLANProbeMethod, interface: String, name: String, peers: [(name: String, mac: MACAddress)], vlans: [Int],
                count: Int, duration: Double, listenFirst: Double, mtu: Bool = false, expectedMTU: Int? = nil, dhcp: Bool = false) {
        self.method = method; self.interface = interface; self.name = name; self.peers = peers; self.vlans = vlans
        self.count = count; self.duration = duration; self.listenFirst = listenFirst; self.mtu = mtu; self.expectedMTU = expectedMTU
        self.dhcp = dhcp
        self.hub = nil
    }
}

/// What a host found: each peer on each VID, its interface's MTU (nil when it could not be read), and with
/// `dhcp` the DHCP server replies it saw.
public struct VLANProbeOutcome: Sendable {
    public var observations: [VLANVerification.Observation]
    public var interfaceMTU: Int?
    public var dhcpServers: [RogueDHCP.Sighting]
    public init(observations: [VLANVerification.Observation], interfaceMTU: Int? = nil, dhcpServers: [RogueDHCP.Sighting] = []) {
        self.observations = observations; self.interfaceMTU = interfaceMTU; self.dhcpServers = dhcpServers
    }
}

/// What a host hears of the switch port its interface is plugged into (LLDP), for the inventory.
public protocol NeighborDiscovery: AnyObject, Sendable {
    /// Every neighbor heard and not expired (its TTL), newest first.
    func neighbors() -> [HeardNeighbor]
}

/// A neighbor as heard on an interface, and how long ago (seconds).
public struct HeardNeighbor: Sendable, Equatable {
    public var interface: String
    public var neighbor: LLDPNeighbor
    public var age: Double
    public init(interface: String, neighbor: LLDPNeighbor, age: Double) {
        self.interface = interface; self.neighbor = neighbor; self.age = age
    }
}
