import VNetCore

/// A rule's traffic as the wire carries it: the five fields FirewallRule (in a host's state) and RuleChange
/// (a control request, and describe-groups' answer) share. The one conversion between the core's
/// `SecurityRule.Traffic` and the wire; the textual forms (scenarios, the store) have theirs in the core
/// (`SecurityRule.Traffic(protocolName:...)`).
public struct WireTraffic: Sendable, Equatable {
    public var `protocol`: Vnet_V1_Protocol
    public var fromPort: UInt32
    public var toPort: UInt32
    /// -1: any.
    public var icmpType: Int32
    public var icmpCode: Int32
}

extension SecurityRule.Traffic {
    public var wire: WireTraffic {
        switch self {
        case .tcp(let ports): WireTraffic(protocol: .tcp, fromPort: UInt32(ports.lowerBound), toPort: UInt32(ports.upperBound), icmpType: -1, icmpCode: -1)
        case .udp(let ports): WireTraffic(protocol: .udp, fromPort: UInt32(ports.lowerBound), toPort: UInt32(ports.upperBound), icmpType: -1, icmpCode: -1)
        case .icmp(let type, let code): WireTraffic(protocol: .icmp, fromPort: 0, toPort: 0, icmpType: Int32(type ?? -1), icmpCode: Int32(code ?? -1))
        case .all: WireTraffic(protocol: .all, fromPort: 0, toPort: 0, icmpType: -1, icmpCode: -1)
        }
    }

    /// Checked: ports within 1-65535 and in order, ICMP type and code within 0-255 (or any), a known protocol.
    public init(wire: WireTraffic, field: String) throws(WireError) {
        switch wire.protocol {
        case .tcp, .udp:
            let low = Int(wire.fromPort), high = Int(wire.toPort)
            guard SecurityRule.validPorts.contains(low), SecurityRule.validPorts.contains(high), low <= high else {
                throw WireError(field, "ports \(low)-\(high) are not a range within 1-65535")
            }
            self = wire.protocol == .tcp ? .tcp(low...high) : .udp(low...high)
        case .icmp:
            self = .icmp(type: wire.icmpType < 0 ? nil : Int(wire.icmpType), code: wire.icmpCode < 0 ? nil : Int(wire.icmpCode))
        case .all:
            self = .all
        default:
            throw WireError(field + ".protocol", "must be tcp, udp, icmp or all")
        }
        if let problem { throw WireError(field, problem) }
    }
}

extension Vnet_V1_FirewallRule {
    public var traffic: WireTraffic {
        get { WireTraffic(protocol: self.protocol, fromPort: fromPort, toPort: toPort, icmpType: icmpType, icmpCode: icmpCode) }
        set { self.protocol = newValue.protocol; fromPort = newValue.fromPort; toPort = newValue.toPort; icmpType = newValue.icmpType; icmpCode = newValue.icmpCode }
    }
}

extension Vnet_V1_RuleChange {
    public var traffic: WireTraffic {
        get { WireTraffic(protocol: self.protocol, fromPort: fromPort, toPort: toPort, icmpType: icmpType, icmpCode: icmpCode) }
        set { self.protocol = newValue.protocol; fromPort = newValue.fromPort; toPort = newValue.toPort; icmpType = newValue.icmpType; icmpCode = newValue.icmpCode }
    }
}
