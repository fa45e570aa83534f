/// One ingress rule of a security group, EC2 style: what traffic, from where. Every rule is an ACCEPT; what
/// no rule accepts is dropped.
public struct SecurityRule: Hashable, Sendable {
    public enum Traffic: Hashable, Sendable {
        case tcp(ClosedRange<Int>)
        case udp(ClosedRange<Int>)
        /// nil type means every ICMP message; a code needs a type.
        case icmp(type: Int?, code: Int?)
        /// Every protocol (EC2's IpProtocol "-1").
        case all
    }

    public enum Source: Hashable, Sendable {
        case cidr(IPv4Network)
        /// Instances of another (or the same) group, resolved to that group's network.
        case group(GroupID)
    }

    public var traffic: Traffic
    public var source: Source

    public init(_ traffic: Traffic, from source: Source) {
        self.traffic = traffic
        self.source = source
    }

    public static let validPorts = 1...65535

    /// Why the rule cannot be applied, or nil.
    public var problem: String? { traffic.problem }

    public var protocolName: String { traffic.protocolName }
}

extension SecurityRule.Traffic {
    /// Why this traffic cannot be a rule, or nil.
    public var problem: String? {
        switch self {
        case .tcp(let ports), .udp(let ports):
            if !SecurityRule.validPorts.contains(ports.lowerBound) || !SecurityRule.validPorts.contains(ports.upperBound) {
                return "ports must lie in 1-65535 (got \(ports.lowerBound)-\(ports.upperBound))"
            }
        case .icmp(let type, let code):
            if let type, !(0...255).contains(type) { return "ICMP type must lie in 0-255 (got \(type))" }
            if let code, !(0...255).contains(code) { return "ICMP code must lie in 0-255 (got \(code))" }
            if code != nil, type == nil { return "an ICMP code needs an ICMP type" }
        case .all:
            break
        }
        return nil
    }

    public var protocolName: String {
        switch self {
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmp: "icmp"
        case .all: "all"
        }
    }

    /// From its textual parts (a scenario's rule, the store's record), checked: "tcp" or "udp" with ports,
    /// "icmp" with an optional type and code. The one textual conversion; the wire has its own in VNetProto
    /// (`WireTraffic`). An unknown protocol is an error, never a guess.
    public init(protocolName: String, ports: ClosedRange<Int>?, icmpType: Int?, icmpCode: Int?) throws(ClusterError) {
        switch protocolName {
        case "tcp", "udp":
            guard let ports else { throw ClusterError(field: "ports", "\(protocolName) rules need ports, \"22\" or \"1000-2000\"") }
            if icmpType != nil || icmpCode != nil { throw ClusterError(field: "icmpType", "only icmp rules have ICMP types") }
            self = protocolName == "tcp" ? .tcp(ports) : .udp(ports)
        case "icmp":
            if ports != nil { throw ClusterError(field: "ports", "icmp rules have no ports; use icmpType and icmpCode") }
            self = .icmp(type: icmpType, code: icmpCode)
        case "all":
            if ports != nil || icmpType != nil || icmpCode != nil {
                throw ClusterError(field: "protocol", "a rule for every protocol has no ports and no ICMP type")
            }
            self = .all
        default:
            throw ClusterError(field: "protocol", "'\(protocolName)' is not tcp, udp, icmp or all")
        }
        if let problem { throw ClusterError(problem) }
    }
}

extension SecurityRule: CustomStringConvertible {
    /// "tcp 22 from 10.0.0.0/8", "icmp type 8 from group alice/web", "all from 0.0.0.0/0": for messages.
    public var description: String {
        let what: String
        switch traffic {
        case .tcp(let ports), .udp(let ports):
            what = "\(protocolName) \(ports.count == 1 ? "\(ports.lowerBound)" : "\(ports.lowerBound)-\(ports.upperBound)")"
        case .icmp(let type, let code):
            what = "icmp" + (type.map { " type \($0)" } ?? "") + (code.map { " code \($0)" } ?? "")
        case .all:
            what = "all"
        }
        switch source {
        case .cidr(let network): return "\(what) from \(network)"
        case .group(let group): return "\(what) from group \(group)"
        }
    }
}
