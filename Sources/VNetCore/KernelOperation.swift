/// One step an agent takes on its host's kernel. Data, not shell text: the Linux backend turns each into a line
/// of `ip -batch` (each word checked, IPBatch) or an argument list, never a command line built from strings.
public enum KernelOperation: Sendable, Hashable {
    /// Fail the apply, naming the link, if it does not exist (the physical interface, VNET_BRIDGE).
    case requireLink(String)
    case createVLAN(name: String, parent: String, vlan: Int)
    case createBridge(String)
    /// A tap for the instance whose MAC is `mac`; the tap itself (the bridge's port) gets `mac.tapHostSide`.
    case createTap(name: String, mac: MACAddress)
    case setUp(String)
    case attach(port: String, bridge: String)
    case addAddress(HostNetworkState.Address)
    case removeAddress(HostNetworkState.Address)
    case detach(port: String)
    case deleteLink(String)
    /// Write dhcpd.conf atomically and start or reload dhcpd on these interfaces.
    case configureDHCPD(interfaces: [String])
    case stopDHCPD
    /// Apply this table's document with iptables-restore --noflush, and ensure the built-in chains' jumps.
    case restoreIPTables(table: String)
    /// Remove this project's chains and jumps from a table.
    case clearIPTables(table: String)

    /// The step as the iproute2 (or other) command an operator would type for it, for reading plans.
    public var description: String {
        switch self {
        case .requireLink(let name): "require link \(name) (never created or removed by vnet)"
        case .createVLAN(let name, let parent, let vlan): "ip link add link \(parent) name \(name) type vlan id \(vlan)"
        case .createBridge(let name): "ip link add name \(name) type bridge"
        case .createTap(let name, let mac): "ip tuntap add dev \(name) mode tap; ip link set dev \(name) address \(mac.tapHostSide) (guest \(mac))"
        case .setUp(let name): "ip link set dev \(name) up"
        case .attach(let port, let bridge): "ip link set dev \(port) master \(bridge)"
        case .addAddress(let address): "ip addr add \(address.cidr)\(address.broadcast.map { " broadcast \($0)" } ?? "") dev \(address.device)"
        case .removeAddress(let address): "ip addr del \(address.cidr) dev \(address.device)"
        case .detach(let port): "ip link set dev \(port) nomaster"
        case .deleteLink(let name): "ip link del dev \(name)"
        case .configureDHCPD(let interfaces): "write dhcpd.conf and (re)load dhcpd on \(interfaces.joined(separator: " "))"
        case .stopDHCPD: "stop dhcpd"
        case .restoreIPTables(let table): "iptables-restore --noflush < \(table) document; ensure jumps into VNET-* chains"
        case .clearIPTables(let table): "remove vnet chains and jumps from the \(table) table"
        }
    }
}

/// Computes the ordered operations that take a host from `observed` to `desired`.
///
/// Order, as Tailscale's router and the CNI plugins do it: everything that adds comes before anything that
/// removes, so an instance never loses its path while a change is half done. Within the adds, parents come
/// before children (VLAN device before the bridge that holds it, bridge before its ports); within the removes,
/// the reverse. Nothing that is already as desired is touched: an unchanged vif is never detached.
public enum KernelPlanner {
    public static func operations(from observed: HostNetworkState, to desired: HostNetworkState) -> [KernelOperation] {
        var adds: [KernelOperation] = desired.requiredLinks.map { .requireLink($0) }
        var removes: [KernelOperation] = []
        var created: [String] = []

        // VLAN devices: a device whose parent or tag changed is replaced (removed first, under its name).
        let observedVLANs = Dictionary(observed.vlanDevices.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let desiredVLANs = Dictionary(desired.vlanDevices.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var replaced: [KernelOperation] = []
        for device in desired.vlanDevices where observedVLANs[device.name] != device {
            if observedVLANs[device.name] != nil { replaced.append(.deleteLink(device.name)) }
            adds.append(.createVLAN(name: device.name, parent: device.parent, vlan: device.vlan))
            created.append(device.name)
        }
        adds.insert(contentsOf: replaced, at: desired.requiredLinks.count)

        let observedBridges = Set(observed.bridges.map(\.name))
        for bridge in desired.bridges where !observedBridges.contains(bridge.name) {
            adds.append(.createBridge(bridge.name))
            created.append(bridge.name)
        }
        let observedVifs = Dictionary(observed.vifs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // An observed vif's MAC is the guest's it serves: for a tap, the backend reports it only when the tap
        // carries the matching host-side MAC (`tapHostSide`), so a tap carrying anything else is made again.
        for vif in desired.vifs where vif.createTap {
            if let existing = observedVifs[vif.name], existing.mac == vif.mac { continue }
            if observedVifs[vif.name] != nil { adds.append(.deleteLink(vif.name)) }
            adds.append(.createTap(name: vif.name, mac: vif.mac))
            created.append(vif.name)
        }
        adds += created.map { .setUp($0) }

        let observedPorts = Set(observed.bridges.flatMap { bridge in bridge.ports.map { "\($0)\u{0}\(bridge.name)" } })
        for bridge in desired.bridges {
            for port in bridge.ports where !observedPorts.contains("\(port)\u{0}\(bridge.name)") {
                adds.append(.attach(port: port, bridge: bridge.name))
            }
        }
        // A hypervisor's vif keeps its own host-side MAC (the instance's is on the guest's side), so only the
        // bridge says whether it is attached; a tap made just now is attached whatever it was before.
        let createdNow = Set(created)
        for vif in desired.vifs where observedVifs[vif.name]?.bridge != vif.bridge || createdNow.contains(vif.name) {
            adds.append(.attach(port: vif.name, bridge: vif.bridge))
        }
        let observedAddresses = Set(observed.addresses)
        for address in desired.addresses where !observedAddresses.contains(address) {
            adds.append(.addAddress(address))
        }
        if let dhcpd = desired.dhcpd, dhcpd != observed.dhcpd {
            adds.append(.configureDHCPD(interfaces: dhcpd.interfaces))
        }
        if let firewall = desired.firewall, firewall != observed.firewall {
            adds.append(.restoreIPTables(table: "filter"))
            adds.append(.restoreIPTables(table: "nat"))
        }

        // Removes, children first.
        if observed.firewall != nil, desired.firewall == nil {
            removes.append(.clearIPTables(table: "nat"))
            removes.append(.clearIPTables(table: "filter"))
        }
        if observed.dhcpd != nil, desired.dhcpd == nil { removes.append(.stopDHCPD) }
        let desiredAddresses = Set(desired.addresses)
        for address in observed.addresses where !desiredAddresses.contains(address) {
            removes.append(.removeAddress(address))
        }
        let desiredVifs = Dictionary(desired.vifs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for vif in observed.vifs where desiredVifs[vif.name] == nil {
            // A tap is ours to delete; a hypervisor's vif is only let go of.
            removes.append(vif.createTap ? .deleteLink(vif.name) : .detach(port: vif.name))
        }
        let desiredBridges = Set(desired.bridges.map(\.name))
        for bridge in observed.bridges where !desiredBridges.contains(bridge.name) {
            removes.append(.deleteLink(bridge.name))
        }
        for device in observed.vlanDevices where desiredVLANs[device.name] == nil {
            removes.append(.deleteLink(device.name))
        }
        // The required-link checks guard changes; with nothing to change there is nothing to guard.
        if adds.count == desired.requiredLinks.count, removes.isEmpty { return [] }
        return adds + removes
    }

    /// The operations that build `desired` on a host that has none of it yet.
    public static func bringUp(_ desired: HostNetworkState) -> [KernelOperation] {
        operations(from: .empty(host: desired.host, role: desired.role, mode: desired.mode), to: desired)
    }
}
