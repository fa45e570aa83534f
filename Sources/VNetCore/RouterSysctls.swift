/// The kernel settings of a front end that routes untrusted tenants' traffic (MANAGED, MANAGED-NOVLAN), as
/// data: the backend reads them and writes only those that differ, and a value changed back by hand is drift.
///
/// What was chosen, and why:
/// - `ip_forward=1`: the front end routes between the groups' networks and to the outside.
/// - `send_redirects=0` on `all` and on every interface carrying a group's router address: in MANAGED-NOVLAN
///   every group's network is on one segment, and the kernel answers a packet it forwards back out of the
///   interface it came in on with an ICMP redirect ("talk to that host directly"). Instances accept it (Linux
///   guests do by default, with `shared_media`) and then reach another group's instances without passing the
///   front end's filter, for minutes. The kernel sends a redirect when `all` OR the interface says so, so both
///   are written.
/// - `accept_redirects=0` on those interfaces: a tenant must not be able to re-route the front end (with
///   forwarding on, the kernel accepts only when `all` AND the interface allow it, so the interface suffices
///   and the operator's `all` is left alone).
/// - `rp_filter=1` (strict) on those interfaces: a packet whose source would not be routed back out of the
///   interface it came in on is dropped, so an instance on one VLAN cannot pass as another group's address
///   (the kernel takes the larger of `all` and the interface; an operator's loose `all=2` would win, and that
///   is theirs to decide).
/// - `proxy_arp=0` on those interfaces: answering ARP for other networks would let instances of one group
///   reach addresses of another on the shared segment without routing.
public enum RouterSysctls {
    public struct Setting: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The key in sysctl's slash form (`net/ipv4/conf/eth0.12/send_redirects`): an interface name may
        /// hold dots, which the dotted form would split.
        public var key: String
        public var value: String
        public init(_ key: String, _ value: String) { self.key = key; self.value = value }
        public static func < (a: Self, b: Self) -> Bool { a.key < b.key }
        /// The key as an operator reads it (`net.ipv4.conf.eth0/12.send_redirects` is sysctl's own spelling).
        public var dotted: String { String(key.map { $0 == "/" ? "." : $0 == "." ? "/" : $0 }) }
        public var description: String { "\(dotted)=\(value)" }
    }

    /// The settings `desired` needs; empty for hosts that route nothing (nodes, SYSTEM and STATIC front ends).
    public static func settings(for desired: HostNetworkState) -> [Setting] {
        guard desired.role == .frontend, desired.mode.carvesNetworks else { return [] }
        var settings = [Setting("net/ipv4/ip_forward", "1"), Setting("net/ipv4/conf/all/send_redirects", "0")]
        // The interfaces holding a group's router address (the public /32s are not routed instance networks).
        let routed = Set(desired.addresses.filter { $0.prefixLength < 32 }.map(\.device))
        for device in routed.sorted() {
            settings += [Setting("net/ipv4/conf/\(device)/send_redirects", "0"), Setting("net/ipv4/conf/\(device)/accept_redirects", "0"),
                         Setting("net/ipv4/conf/\(device)/rp_filter", "1"), Setting("net/ipv4/conf/\(device)/proxy_arp", "0")]
        }
        return settings
    }
}
