/// Bring-up checks its own VLANs (MANAGED): when a group's VLAN first comes up on a node (its first instance
/// there), the coordinator checks that VID between that node and the front end with a short tagged probe, and
/// `--wait` tells the operator when it does not pass. The instance is created either way. Pure: what a probe's
/// pair says, in an operator's words.
public enum BringUpCheck {
    /// Where a check stands.
    public enum State: String, Sendable, Equatable {
        case pending, passed, failed, skipped
    }

    /// One VID on one node, as the last check of it found.
    public struct Result: Sendable, Equatable {
        public var node: String
        public var vlan: Int
        /// The revision whose commit brought the VLAN up.
        public var revision: UInt64
        public var state: State
        /// Why it failed or was skipped, in an operator's words ("" when it passed or is pending).
        public var detail: String
        public init(node: String, vlan: Int, revision: UInt64, state: State, detail: String = "") {
            self.node = node; self.vlan = vlan; self.revision = revision; self.state = state; self.detail = detail
        }
    }

    /// What the pair between the node and the front end says of `vlan`: passed, or why not. `control`: the
    /// untagged pair's status (nil when none ran). `port`: the node's switch port, when its agent heard it.
    public static func judge(node: String, frontend: String, vlan: Int, status: VLANVerification.Status, control: VLANVerification.Status?,
                             port: LLDPNeighbor? = nil) -> (State, String) {
        let side = port.map { "\(node)'s port \($0.label)" } ?? "\(node)'s port"
        switch status {
        case .ok:
            return (.passed, "")
        case .unreachable(let host):
            return (.skipped, "not checked: \(host) did not take part (DOWN, busy with another verification, or no report in time)")
        case .oneWay(let from, let to):
            return (.failed, "applied on \(node), but VID \(vlan) passes only from \(from) to \(to) (\(side) or its NIC drops it one way?)")
        case .failed:
            if let control, control != .ok {
                return (.failed, "applied on \(node), but nothing passes between \(node) and \(frontend), untagged either: a link problem, not VID \(vlan)")
            }
            let announced = port.flatMap { VLANVerification.announcement(of: $0, vlan: vlan, passes: false) }.map { "; \($0)" } ?? ""
            return (.failed, "applied on \(node), but VID \(vlan) does not pass between \(node) and \(frontend) (\(side) drops it?)\(announced)")
        }
    }
}
