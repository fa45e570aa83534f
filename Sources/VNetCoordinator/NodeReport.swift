import VNetCore
import VNetProto

/// The latest of what a node's agent reported about its host: dhcpd, iptables, drift repaired, what of its
/// desired state is not on it (failures, conflicts), its links and addresses, and (SYSTEM mode) the instance
/// addresses it learned. Entries that do not parse are dropped: this comes off the wire.
struct NodeReport {
    var dhcpdState = ""
    var iptablesRules: UInt32 = 0
    var driftRepairs: UInt32 = 0
    var lastDrift = ""
    var learned: [LearnedAddress] = []
    var links: [HostLink] = []
    var addresses: [String] = []
    /// The switch port(s) heard on VNET_INTERFACE (LLDP), with how long ago (ms) as of the inventory.
    var neighbors: [Vnet_V1_LldpNeighbor] = []
    /// The revision `failures` are about, and the failures (from apply results and inventories, the newer wins).
    var failedRevision: UInt64 = 0
    var failures: [ApplyReport.Failure] = []

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
        links = inventory.links.prefix(4096).compactMap(HostLink.init(wire:))
        addresses = inventory.addresses.prefix(4096).filter { $0.utf8.count <= 64 }
        neighbors = inventory.neighbors.prefix(16).filter { LLDPNeighbor(wire: $0) != nil && NameRules.interfaceNameProblem($0.interface) == nil }
        update(revision: inventory.appliedRevision, failures: inventory.failures)
    }

    /// Takes the failures an apply result or inventory carries for `revision`. Returns whether they changed
    /// (the coordinator logs a cause when it changes, not on every retry).
    @discardableResult
    mutating func update(revision: UInt64, failures wire: [Vnet_V1_ObjectFailure]) -> Bool {
        let next = wire.prefix(1000).compactMap(ApplyReport.Failure.init(wire:)).sorted()
        let changed = next != failures
        failures = next
        failedRevision = next.isEmpty ? 0 : revision
        return changed
    }

    func fill(_ info: inout Vnet_V1_NodeInfo) {
        info.dhcpdState = dhcpdState
        info.iptablesRules = iptablesRules
        info.driftRepairs = driftRepairs
        info.lastDrift = lastDrift
        info.failedRevision = failedRevision
        info.failures = failures.map(\.wire)
        info.links = links.map(\.wire)
        info.addresses = addresses
        info.neighbors = neighbors
    }
}
