/// The eucalyptus.conf pair the process benchmarks run their clusters with: MANAGED-NOVLAN on 10.20.0.0/16, the
/// front end on eth0, nodes bridging on br0.
enum BenchConfigs {
    /// Writes `fe.conf` and `node.conf` into `directory`.
    static func writeNoVLAN(in directory: String, addressesPerNetwork: Int) throws {
        try """
            VNET_MODE="MANAGED-NOVLAN"
            VNET_INTERFACE="eth0"
            VNET_DHCPDAEMON="/usr/sbin/dhcpd"
            VNET_SUBNET="10.20.0.0"
            VNET_NETMASK="255.255.0.0"
            VNET_DNS="192.0.2.53"
            VNET_ADDRSPERNET="\(addressesPerNetwork)"

            """.write(toFile: "\(directory)/fe.conf", atomically: true, encoding: .utf8)
        try "VNET_MODE=\"MANAGED-NOVLAN\"\nVNET_BRIDGE=\"br0\"\n".write(toFile: "\(directory)/node.conf", atomically: true, encoding: .utf8)
    }
}
