/// What `vnetctl config check` prints: the machine-readable object (`--json`) and the text summary.
public struct ConfigCheckReport: Sendable, Encodable {
    /// Capacity of the configured mode. Fields that do not apply to the mode are absent from the JSON.
    public struct Capacity: Sendable, Encodable, Equatable {
        public var networks: Int?
        public var addressesPerNetwork: Int?
        public var instancesPerNetwork: Int?
        public var publicIPs: Int?
        public var firstVlan: Int?
        public var lastVlan: Int?
        /// VNET_VLANRANGE as configured; firstVlan-lastVlan is the part of it the subnet reaches.
        public var vlanRange: String?
        public var staticHosts: Int?
    }

    public struct Finding: Sendable, Encodable, Equatable {
        public var line: Int
        public var key: String
        public var message: String
    }

    public var valid: Bool
    public var mode: String?
    public var role: String
    public var errors: [Finding]
    public var warnings: [Finding]
    public var capacity: Capacity

    public init(_ check: ConfigCheck) {
        valid = check.isValid
        mode = check.mode?.rawValue
        role = check.role.rawValue
        errors = check.diagnostics.errors.map { Finding(line: $0.line, key: $0.key, message: $0.message) }
        warnings = check.diagnostics.warnings.map { Finding(line: $0.line, key: $0.key, message: $0.message) }
        capacity = Capacity()
        guard let config = check.config, config.role == .frontend else { return }
        if let layout = config.layout {
            capacity.networks = layout.allocatable.count
            capacity.addressesPerNetwork = layout.addressesPerNetwork
            capacity.instancesPerNetwork = layout.instancesPerNetwork
            capacity.publicIPs = config.publicIPs.count
            capacity.firstVlan = layout.allocatableVLANs?.lowerBound
            capacity.lastVlan = layout.allocatableVLANs?.upperBound
            capacity.vlanRange = "\(layout.vlanRange.lowerBound)-\(layout.vlanRange.upperBound)"
        } else if config.mode == .staticMode {
            capacity.staticHosts = config.macMap.count
        }
    }

    private enum CodingKeys: String, CodingKey { case valid, mode, role, errors, warnings, capacity }

    /// Written out by hand so that `mode` is always present: `null` when VNET_MODE is missing or unknown.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(valid, forKey: .valid)
        try container.encode(mode, forKey: .mode)
        try container.encode(role, forKey: .role)
        try container.encode(errors, forKey: .errors)
        try container.encode(warnings, forKey: .warnings)
        try container.encode(capacity, forKey: .capacity)
    }

    /// The readable summary; diagnostics as `FILE:LINE: KEY: message`, errors first.
    public static func text(_ check: ConfigCheck, file: String) -> String {
        var lines: [String] = []
        let report = ConfigCheckReport(check)
        let modeText = check.mode?.rawValue ?? "unknown"
        lines.append("\(file): \(modeText) mode, \(check.role == .frontend ? "front end" : "node")")
        for diagnostic in check.diagnostics.errors + check.diagnostics.warnings {
            lines.append(diagnostic.formatted(file: file))
        }
        let c = report.capacity
        if let networks = c.networks, let per = c.addressesPerNetwork, let instances = c.instancesPerNetwork,
           let first = c.firstVlan, let last = c.lastVlan {
            lines.append("capacity: \(networks) groups' networks of \(per) addresses (\(instances) instances each, \(networks * instances) in all), VLAN \(first)-\(last) of VNET_VLANRANGE \(c.vlanRange ?? "\(first)-\(last)"), \(c.publicIPs ?? 0) public IPs")
        } else if let hosts = c.staticHosts {
            lines.append("capacity: \(hosts) static MAC=IP pairs")
        } else if check.isValid, check.mode == .system {
            lines.append("capacity: addresses come from the DHCP server outside the cluster")
        }
        let errorCount = report.errors.count, warningCount = report.warnings.count
        lines.append(check.isValid
            ? "valid\(warningCount > 0 ? " (\(warningCount) warning\(warningCount == 1 ? "" : "s"))" : "")"
            : "invalid: \(errorCount) error\(errorCount == 1 ? "" : "s"), \(warningCount) warning\(warningCount == 1 ? "" : "s")")
        return lines.joined(separator: "\n") + "\n"
    }
}
