/// What one apply of a desired state did on a host: returned by the host backend, carried to the coordinator in
/// the apply result, shown by `vnetctl nodes` and `--wait`.
///
/// An apply that returns a report has applied everything except what `failures` names: one instance's missing
/// vif, one refused object or one failed command stays that object's, and the rest of the host is as desired.
/// (An apply that cannot start at all, a required link missing or the host unreadable, throws instead and
/// changes nothing.)
public struct ApplyReport: Sendable, Equatable {
    /// One object of the desired state that is not as desired on the host, and why.
    public struct Failure: Sendable, Hashable, Comparable, CustomStringConvertible {
        public enum Kind: String, Sendable, Hashable {
            /// The object is not on the host (a hypervisor's vif not made yet, or gone): retried, attached when it appears.
            case missing
            /// The object exists and is the operator's: vnet never takes it over or changes it.
            case conflict
            /// Applying it would cut the host off (a vif that is the uplink, a bridge, loopback): never done.
            case refused
            /// A command for it failed.
            case failed
        }
        public var kind: Kind
        /// What it is, as an operator names it: "vif vnet3", "vlan device eth0.12", "dhcpd", "iptables".
        public var object: String
        /// The instance the object serves, when it serves one.
        public var instance: InstanceID?
        public var error: String

        public init(_ kind: Kind, object: String, instance: InstanceID? = nil, error: String) {
            self.kind = kind; self.object = object; self.instance = instance; self.error = error
        }
        public static func < (a: Self, b: Self) -> Bool { (a.object, a.error) < (b.object, b.error) }
        public var description: String {
            "\(object)\(instance.map { " (\($0))" } ?? ""): \(kind.rawValue): \(error)"
        }
    }

    /// Kernel and daemon operations carried out.
    public var operations = 0
    public var failures: [Failure] = []
    /// What was found changed by hand and put back, in words.
    public var drift: [String] = []
    /// What the operator should hear about beyond drift (the iptables-preload loaded, an address of theirs used as is).
    public var notes: [String] = []

    public init(operations: Int = 0, failures: [Failure] = [], drift: [String] = [], notes: [String] = []) {
        self.operations = operations; self.failures = failures; self.drift = drift; self.notes = notes
    }

    /// Everything desired is on the host.
    public var isComplete: Bool { failures.isEmpty }

    /// The failures as one line each, sorted: what is logged and compared to log a cause only when it changes.
    public var failureLines: [String] { failures.sorted().map(\.description) }
}
