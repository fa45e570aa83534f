import VNetCore
import VNetProto

/// A committed change in a few words, for the coordinator's log line about it (with the revision and the
/// hosts whose desired state changed as metadata).
enum ControlRequestSummary {
    static func text(_ request: Vnet_V1_ControlRequest) -> String {
        func group(_ user: String, _ name: String) -> String { user.isEmpty ? name : "\(user)/\(name)" }
        func address(_ value: UInt32) -> String { value == 0 ? "any" : IPv4Address(value).description }
        switch request.op {
        case .runInstance(let run): return "run-instance \(run.instanceID) on \(run.node)" + (run.group.isEmpty ? "" : " in \(group(run.user, run.group))")
        case .terminateInstance(let ref): return "terminate-instance \(ref.instanceID)"
        case .createGroup(let ref): return "create-group \(group(ref.user, ref.group))"
        case .deleteGroup(let ref): return "delete-group \(group(ref.user, ref.group))"
        case .authorize(let rule): return "authorize \(group(rule.user, rule.group)) \(rule.protocol) from \(rule.sourceCidr.isEmpty ? rule.sourceGroup : rule.sourceCidr)"
        case .revoke(let rule): return "revoke \(group(rule.user, rule.group)) \(rule.protocol) from \(rule.sourceCidr.isEmpty ? rule.sourceGroup : rule.sourceCidr)"
        case .authorizeRules(let rules): return "authorize \(group(rules.user, rules.group)) \(rules.rules.count) rules"
        case .revokeRules(let rules): return "revoke \(group(rules.user, rules.group)) \(rules.rules.count) rules"
        case .allocateAddress(let ref): return "allocate-address \(address(ref.address))"
        case .associateAddress(let association): return "associate-address \(address(association.address)) with \(association.instanceID)"
        case .disassociateAddress(let ref): return "disassociate-address \(address(ref.address))"
        case .releaseAddress(let ref): return "release-address \(address(ref.address))"
        default: return "request"
        }
    }
}
