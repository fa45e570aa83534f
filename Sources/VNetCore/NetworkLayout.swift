/// How MANAGED and MANAGED-NOVLAN cut VNET_SUBNET into networks of VNET_ADDRSPERNET (A) addresses.
///
/// Network index n is VLAN tag n+2 (tags 0 and 1 are not used, 4095 is reserved by 802.1Q), so at most 4093
/// networks exist whatever the subnet's size. In network n: the network address is SUBNET + n*A, the router
/// (the front end's address) is +1, instances take +2 ... +A-2, and the broadcast is +A-1: A-3 instances.
public struct NetworkLayout: Sendable, Equatable {
    public static let firstVLAN = 2
    public static let lastPossibleVLAN = 4094
    public static let maxNetworks = lastPossibleVLAN - firstVLAN + 1  // 4093

    public let subnet: IPv4Network
    public let addressesPerNetwork: Int
    /// Networks that fit in the subnet, before the VLAN limit.
    public let networksInSubnet: UInt64
    /// Usable networks: those that fit, at most `maxNetworks`.
    public let networkCount: Int

    public init(subnet: IPv4Network, addressesPerNetwork: Int) {
        self.subnet = subnet
        self.addressesPerNetwork = addressesPerNetwork
        networksInSubnet = subnet.size / UInt64(addressesPerNetwork)
        networkCount = Int(min(networksInSubnet, UInt64(NetworkLayout.maxNetworks)))
    }

    public var instancesPerNetwork: Int { addressesPerNetwork - 3 }
    public var prefixLength: Int { 32 - addressesPerNetwork.trailingZeroBitCount }
    public var netmask: IPv4Address { IPv4Address(IPv4Network.maskValue(prefixLength)) }
    public var lastVLAN: Int { vlan(ofNetwork: networkCount - 1) }
    public var totalInstanceCapacity: Int { networkCount * instancesPerNetwork }

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
