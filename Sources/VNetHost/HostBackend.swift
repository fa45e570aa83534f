import VNetCore

/// What an agent applies desired state through: the Linux backend (ip -batch, iptables-restore, dhcpd) is
/// one, the recording backend (VNetTestSupport) another, so the bus can be proven without touching a kernel.
/// Every member is required (no defaults): a backend says what it does about each, and a fake that forgets
/// one does not compile. The agent calls it from one thread only (its host worker), never two at once.
public protocol HostBackend: AnyObject {
    /// Makes the host match `desired`, idempotently, as far as it can: the report names every object it could
    /// not make as desired (the rest is applied). Throws, having changed nothing, when it cannot start at all
    /// (a required link missing, the host unreadable, a state it cannot carry out).
    func apply(_ desired: HostNetworkState, revision: UInt64) throws -> ApplyReport
    /// What is on the host now, from one look at it: every link (vnet's marked) and address, the operator's
    /// too, for the inventory: the coordinator judges vifs by it, `vnetctl nodes --detail` shows it.
    func inventory() -> HostInventory
    /// dhcpd as the inventory reports it: "running (pid N)", "stopped", "absent".
    var dhcpdState: String { get }
    /// How many rules vnet has in iptables (0 where it writes none).
    var iptablesRules: Int { get }
    /// How many times this backend (re)started dhcpd since the agent started.
    var dhcpdRestarts: Int { get }
    /// How many host entries this backend added to or removed from a running dhcpd (OMAPI) since the agent started.
    var dhcpdHostChanges: Int { get }
    /// Whether a daemon the applied state runs has died (dhcpd): cheap enough to ask every heartbeat, so that
    /// the agent repairs it at once instead of at its next reconcile.
    var daemonDown: Bool { get }
    /// Instance addresses this host learned (SYSTEM mode), reading what arrived since the last call.
    func learnedAddresses() -> [LearnedAddress]
    /// This host's side of `vnetctl diagnose`: what is on it, and what looks wrong against `desired`.
    func diagnose(desired: HostNetworkState?) -> HostDiagnosis
}

/// What an agent reports of its host in an inventory.
public struct HostInventory: Sendable {
    public var links: [HostLink]
    /// Every IPv4 address, "ADDRESS/PREFIX DEVICE".
    public var addresses: [String]
    public init(links: [HostLink] = [], addresses: [String] = []) {
        self.links = links; self.addresses = addresses
    }
}

/// A host's diagnostic bundle: files (command outputs, daemon files) and findings, one sentence each.
public struct HostDiagnosis: Sendable {
    public var files: [(name: String, content: [UInt8])] = []
    public var findings: [String] = []
    public init() {}
}
