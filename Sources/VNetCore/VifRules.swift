/// A link as an agent found it on its host, as much as the coordinator needs to judge a vif (kept from inventories).
public struct HostLink: Sendable, Hashable, Comparable {
    public var name: String
    /// The kernel's kind ("bridge", "vlan", "tun", "veth", "bond", ...); nil for a plain device (a NIC, a Xen vif).
    public var kind: String?
    public var master: String?
    public var isUp: Bool
    /// Whether vnet made it (its record says so); everything else on the host is the operator's or the hypervisor's.
    public var vnetOwned: Bool

    public init(name: String, kind: String?, master: String?, isUp: Bool, vnetOwned: Bool) {
        self.name = name; self.kind = kind; self.master = master; self.isUp = isUp; self.vnetOwned = vnetOwned
    }
    public static func < (a: Self, b: Self) -> Bool { a.name < b.name }
}

/// Which links may be an instance's vif. A vif is attached to an instance bridge and, when its instance goes,
/// let go of (or deleted, for vnet's own taps): handing the node's uplink, a bridge or loopback to that would
/// cut the node off or wedge every later apply. Both the coordinator (at run-instance, from the node's
/// registration and inventory) and the agent (on every apply, from the live host) ask this; the agent's answer
/// is the last word, because the coordinator's view of the host can be old.
public enum VifRules {
    /// Kinds a hypervisor's vif has: a tap (KVM/QEMU, libvirt) or a veth (containers).
    static let vifKinds: Set<String> = ["tun", "veth"]

    /// Why `name` must not be an instance's vif on a node whose VNET_INTERFACE is `interface` and VNET_BRIDGE
    /// `bridge` (nil where not known), or nil when it may be. `link` is the link of that name as last seen on the
    /// node (nil: not there, or not known; a vif that does not exist yet is waited for).
    public static func refusal(_ name: String, interface: String?, bridge: String?, link: HostLink?) -> String? {
        if name == "lo" { return "lo is the node's loopback device" }
        if name == interface { return "\(name) is the node's VNET_INTERFACE (its uplink)" }
        if name == bridge { return "\(name) is the node's VNET_BRIDGE" }
        if name.hasPrefix("eucabr") { return "\(name) is a name of vnet's instance bridges" }
        guard let link else { return nil }
        if link.kind == "bridge" { return "\(name) is a bridge on the node" }
        if let kind = link.kind {
            guard vifKinds.contains(kind) else { return "\(name) is a \(kind) device of the node, not a hypervisor's vif" }
            return nil
        }
        // No kind: a NIC, or a Xen netback vif (vif<domain>.<n>), which has none either.
        if isXenVif(name) { return nil }
        if let bridge, link.master == bridge { return "\(name) is a port of the node's VNET_BRIDGE \(bridge) (a network device, not a hypervisor's vif)" }
        return "\(name) is a network device of the node, not a hypervisor's vif"
    }

    static func isXenVif(_ name: String) -> Bool {
        guard name.hasPrefix("vif") else { return false }
        let parts = name.dropFirst(3).split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }
}
