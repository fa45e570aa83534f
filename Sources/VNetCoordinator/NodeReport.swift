import VNetCore
import VNetProto

/// The latest of what a node's agent reported about its host: dhcpd, iptables, drift repaired, and (SYSTEM
/// mode) the instance addresses it learned. Entries that do not parse are dropped: this comes off the wire.
struct NodeReport {
    var dhcpdState = ""
    var iptablesRules: UInt32 = 0
    var driftRepairs: UInt32 = 0
    var lastDrift = ""
    var learned: [LearnedAddress] = []

    mutating func update(from inventory: Vnet_V1_Inventory) {
        dhcpdState = inventory.dhcpdState
        iptablesRules = inventory.iptablesRules
        if !inventory.drift.isEmpty {
            driftRepairs &+= 1
            lastDrift = inventory.drift.joined(separator: "; ")
        }
        learned = inventory.learned.compactMap { wire in
            InstanceID(wire.instanceID).map { LearnedAddress(instance: $0, mac: MACAddress(wire.mac), address: IPv4Address(wire.address)) }
        }
    }
}
