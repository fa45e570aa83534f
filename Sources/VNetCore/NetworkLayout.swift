/// How MANAGED and MANAGED-NOVLAN cut VNET_SUBNET into networks of VNET_ADDRSPERNET (A) addresses.
///
/// Network index n is VLAN tag n+2 (tags 0 and 1 are not used, 4095 is reserved by 802.1Q), so at most 4093
/// networks exist whatever the subnet's size. In network n: the network address is SUBNET + n*A, the router
/// (the front end's address) is +1, instances take +2 ... +A-2, and the broadcast is +A-1: A-3 instances.
///
/// Groups get networks only from the VID range (VNET_VLANRANGE, this project's key; default 10-4094): sites
/// trunk only some VIDs, and the seed document's own check and troubleshooting use VLAN 10 (`eucabr10`,
/// "usually 10"). The arithmetic between a VID and its network stays Eucalyptus' (network = SUBNET +
/// (VID-2) x A), so a range that starts at 10 leaves the subnet's first eight networks unused, and a stored
/// group outside a narrowed range still has a valid network (`contains`), only no new group gets one there.
public struct NetworkLayout: Sendable, Equatable {
    public static let firstVLAN = 2
    public static let lastPossibleVLAN = 4094
    public static let maxNetworks = lastPossibleVLAN - firstVLAN + 1  // 4093
    public static let defaultVLANRange = 10...lastPossibleVLAN
    public static let possibleVLANs = firstVLAN...lastPossibleVLAN

    public let subnet: IPv4Network
    public let addressesPerNetwork: Int
    /// Networks that fit in the subnet, before the VLAN limit.
    public let networksInSubnet: UInt64
    /// Networks with a valid VID: those that fit, at most `maxNetworks`. A stored group may hold any of them.
    public let networkCount: Int
    /// The VIDs new groups take their networks from.
    public let vlanRange: ClosedRange<Int>
    /// The network indexes new groups are given: the range's VIDs whose networks fit in the subnet. Empty
    /// when the range starts past the subnet's last network (the validator reports that).
    public let allocatable: Range<Int>

    public init(subnet: IPv4Network, addressesPerNetwork: Int, vlanRange: ClosedRange<Int> = NetworkLayout.defaultVLANRange) {
        precondition(NetworkLayout.possibleVLANs.contains(vlanRange.lowerBound) && NetworkLayout.possibleVLANs.contains(vlanRange.upperBound))
        self.subnet = subnet
        self.addressesPerNetwork = addressesPerNetwork
        self.vlanRange = vlanRange
        networksInSubnet = subnet.size / UInt64(addressesPerNetwork)
        networkCount = Int(min(networksInSubnet, UInt64(NetworkLayout.maxNetworks)))
        let first = vlanRange.lowerBound - NetworkLayout.firstVLAN
        let end = min(networkCount, vlanRange.upperBound - NetworkLayout.firstVLAN + 1)
        allocatable = first < end ? first..<end : first..<first
    }

    public var instancesPerNetwork: Int { addressesPerNetwork - 3 }
    public var prefixLength: Int { 32 - addressesPerNetwork.trailingZeroBitCount }
    public var netmask: IPv4Address { IPv4Address(IPv4Network.maskValue(prefixLength)) }
    /// The highest VID a new group can get (the longest `<iface>.<vid>` name is checked against it).
    public var lastVLAN: Int { vlan(ofNetwork: max(allocatable.upperBound, allocatable.lowerBound + 1) - 1) }
    /// The VIDs new groups can get: the range as far as the subnet reaches.
    public var allocatableVLANs: ClosedRange<Int>? {
        allocatable.isEmpty ? nil : vlan(ofNetwork: allocatable.lowerBound)...vlan(ofNetwork: allocatable.upperBound - 1)
    }
    /// The VIDs of the subnet's networks, whatever the range.
    public var subnetVLANs: ClosedRange<Int> { NetworkLayout.firstVLAN...vlan(ofNetwork: networkCount - 1) }
    public var totalInstanceCapacity: Int { allocatable.count * instancesPerNetwork }

    public func vlan(ofNetwork index: Int) -> Int { index + NetworkLayout.firstVLAN }
    public func networkIndex(ofVLAN vlan: Int) -> Int? {
        let index = vlan - NetworkLayout.firstVLAN
        return (0..<networkCount).contains(index) ? index : nil
    }

    public func network(_ index: Int) -> IPv4Network {
        precondition((0..<networkCount).contains(index), "network index \(index) outside 0..<\(networkCount)")
        return IPv4Network(address: subnet.address.advanced(by: UInt32(index * addressesPerNetwork)),
                           prefixLength: prefixLength)!
    }

    public func router(_ index: Int) -> IPv4Address { network(index).address.advanced(by: 1) }
    public func broadcast(_ index: Int) -> IPv4Address { network(index).broadcast }

    /// Instance slot s (0 ..< instancesPerNetwork) of network `index`.
    public func instanceAddress(network index: Int, slot: Int) -> IPv4Address {
        precondition((0..<instancesPerNetwork).contains(slot))
        return network(index).address.advanced(by: UInt32(slot + 2))
    }

    /// Which network and slot an address is, if it is an instance address of this layout.
    public func locate(_ address: IPv4Address) -> (network: Int, slot: Int)? {
        guard subnet.contains(address) else { return nil }
        let offset = Int(address.value - subnet.address.value)
        let index = offset / addressesPerNetwork
        let slot = offset % addressesPerNetwork - 2
        guard index < networkCount, (0..<instancesPerNetwork).contains(slot) else { return nil }
        return (index, slot)
    }
}
