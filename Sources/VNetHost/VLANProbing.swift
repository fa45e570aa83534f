import VNetCore

/// How an agent runs its side of a VLAN verification (the Linux prober: raw packet sockets). Called on a
/// thread of its own, so the agent keeps heartbeating while it probes.
public protocol VLANProbing: AnyObject, Sendable {
    /// `peers`: every participant in the coordinator's order, this host among them.
    func probe(method: VLANProbeMethod, interface: String, name: String, peers: [(name: String, mac: MACAddress)], vlans: [Int], count: Int,
               duration: Double, listenFirst: Double) throws -> [VLANVerification.Observation]
}
