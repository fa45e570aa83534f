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

extension LLDPNeighbor {
    /// As an inventory carries it: where it was heard and how long ago.
    public func wire(interface: String, ageMilliseconds: UInt32) -> Vnet_V1_LldpNeighbor {
        var out = Vnet_V1_LldpNeighbor()
        out.interface = interface
        out.chassisID = chassisID
        out.portID = portID
        out.systemName = systemName ?? ""
        out.portDescription = portDescription ?? ""
        out.ttl = UInt32(ttl)
        out.portVlan = UInt32(portVLAN ?? 0)
        let sorted = vlans.keys.sorted()
        out.vlans = sorted.map(UInt32.init)
        out.vlanNames = sorted.map { vlans[$0] ?? "" }
        out.maxFrameSize = UInt32(maxFrameSize ?? 0)
        out.ageMs = ageMilliseconds
        return out
    }

    /// nil when a field is unusable (the agent parsed it from the wire; the coordinator checks again).
    public init?(wire: Vnet_V1_LldpNeighbor) {
        let texts = [wire.chassisID, wire.portID, wire.systemName, wire.portDescription] + wire.vlanNames
        guard !wire.chassisID.isEmpty, !wire.portID.isEmpty, texts.allSatisfy({ $0.utf8.count <= 255 }),
              wire.vlans.count == wire.vlanNames.count, wire.vlans.count <= 4094, wire.vlans.allSatisfy({ (1...4094).contains($0) }),
              wire.portVlan <= 4094, wire.ttl <= 65535, wire.maxFrameSize <= 65535 else { return nil }
        self.init(chassisID: wire.chassisID, portID: wire.portID, ttl: Int(wire.ttl), systemName: wire.systemName.isEmpty ? nil : wire.systemName,
                  portDescription: wire.portDescription.isEmpty ? nil : wire.portDescription, portVLAN: wire.portVlan == 0 ? nil : Int(wire.portVlan),
                  vlans: Dictionary(zip(wire.vlans.map(Int.init), wire.vlanNames), uniquingKeysWith: { a, _ in a }),
                  maxFrameSize: wire.maxFrameSize == 0 ? nil : Int(wire.maxFrameSize))
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
