import VNetCore

// Apply reports and host inventories between the core and the wire: one conversion each, used by the agent
// (to send) and the coordinator (to keep and show). What comes off the wire is checked: an entry with an
// unknown kind or an unusable name is dropped, never guessed.

extension ApplyReport.Failure {
    public var wire: Vnet_V1_ObjectFailure {
        var out = Vnet_V1_ObjectFailure()
        out.kind = kind.rawValue
        out.object = object
        out.instanceID = instance?.description ?? ""
        out.error = error
        return out
    }

    /// nil when the kind is unknown or a field is unusable (longer than an operator could read).
    public init?(wire: Vnet_V1_ObjectFailure) {
        guard let kind = Kind(rawValue: wire.kind), !wire.object.isEmpty, wire.object.utf8.count <= 200, wire.error.utf8.count <= 2000 else { return nil }
        let instance = wire.instanceID.isEmpty ? nil : InstanceID(wire.instanceID)
        if !wire.instanceID.isEmpty, instance == nil { return nil }
        self.init(kind, object: wire.object, instance: instance, error: wire.error)
    }
}

extension HostLink {
    public var wire: Vnet_V1_HostLink {
        var out = Vnet_V1_HostLink()
        out.name = name
        out.kind = kind ?? ""
        out.master = master ?? ""
        out.up = isUp
        out.vnetOwned = vnetOwned
        return out
    }

    /// nil when a name is not an interface name.
    public init?(wire: Vnet_V1_HostLink) {
        guard NameRules.interfaceNameProblem(wire.name) == nil,
              wire.master.isEmpty || NameRules.interfaceNameProblem(wire.master) == nil,
              wire.kind.utf8.count <= 32 else { return nil }
        self.init(name: wire.name, kind: wire.kind.isEmpty ? nil : wire.kind, master: wire.master.isEmpty ? nil : wire.master,
                  isUp: wire.up, vnetOwned: wire.vnetOwned)
    }
}

extension HostRole {
    public var wire: Vnet_V1_Role { self == .frontend ? .frontend : .node }
    public init?(wire: Vnet_V1_Role) {
        switch wire {
        case .frontend: self = .frontend
        case .node: self = .node
        default: return nil
        }
    }
}
