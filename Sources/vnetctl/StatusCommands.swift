import ArgumentParser
import VNetCore
import VNetBus
import VNetProto

/// `vnetctl status`
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The coordinator's summary, and every coordinator's role.",
        discussion: "With several coordinators (a list in --coordinator, --endpoints or $VNET_COORDINATOR), each is asked for its role, epoch and store, and the summary is the leader's.")
    @OptionGroup var bus: BusOptions

    struct CoordinatorView: Encodable {
        var endpoint: String, role: String, epoch: UInt64, leader: String, store: String, failovers: UInt64, reason: String
    }
    struct View: Encodable {
        var clusterId: String, mode: String, epoch: UInt64, revision: UInt64, nodesUp: UInt32, nodesSuspect: UInt32, nodesDown: UInt32
        var instances: UInt32, groups: UInt32, droppedFrames: UInt64, refusedFrames: UInt64, store: String
        var coordinators: [CoordinatorView]
    }

    func run() throws {
        let connection = try bus.connection()
        // Each coordinator's own answer (a standby answers status too), then the leader's summary.
        var coordinators: [CoordinatorView] = []
        if connection.endpoints.count > 1 {
            for endpoint in connection.endpoints {
                let client = try RequestClient(context: BusContext.shared, endpoint: endpoint, security: connection.security, codec: EnvelopeCodec(clusterID: bus.clusterID))
                client.followsLeader = false
                var request = Vnet_V1_ControlRequest()
                request.op = .status(Vnet_V1_StatusRequest())
                if let reply = try? client.call(request, timeout: min(bus.timeout, 1)), reply.ok {
                    let s = reply.status
                    coordinators.append(.init(endpoint: endpoint, role: s.standby ? "standby" : "leader", epoch: s.standby ? s.leaderEpoch : s.epoch,
                                              leader: s.leader, store: s.store, failovers: s.failovers, reason: s.standbyReason))
                } else {
                    coordinators.append(.init(endpoint: endpoint, role: "unreachable", epoch: 0, leader: "", store: "", failovers: 0, reason: "no answer within \(min(bus.timeout, 1)) s"))
                }
            }
        }
        let s = try bus.call(.status(Vnet_V1_StatusRequest())).status
        let view = View(clusterId: s.clusterID, mode: s.mode, epoch: s.epoch, revision: s.revision, nodesUp: s.nodesUp, nodesSuspect: s.nodesSuspect,
                        nodesDown: s.nodesDown, instances: s.instances, groups: s.groups, droppedFrames: s.droppedFrames, refusedFrames: s.refusedFrames,
                        store: s.store, coordinators: coordinators)
        if bus.json { try Output.json(view); return }
        var text = """
        cluster \(s.clusterID): \(s.mode), epoch \(s.epoch), revision \(s.revision)\(s.standby ? " (no coordinator leads: \(s.standbyReason))" : "")
        nodes: \(s.nodesUp) up, \(s.nodesSuspect) suspect, \(s.nodesDown) down or never heard from
        \(s.instances) instances, \(s.groups) groups; state in \(s.store)
        frames dropped (malformed, wrong version or cluster): \(s.droppedFrames); refused (unknown or mismatched key): \(s.refusedFrames)

        """
        if !coordinators.isEmpty {
            text += "COORDINATOR".padding(toLength: 28, withPad: " ", startingAt: 0) + " ROLE         EPOCH  FAILOVERS  NOTE\n"
            for row in coordinators {
                let note = row.role == "standby" ? row.reason : row.role == "leader" ? row.store : row.reason
                text += row.endpoint.padding(toLength: 28, withPad: " ", startingAt: 0) + " " + row.role.padding(toLength: 11, withPad: " ", startingAt: 0)
                    + String(format: " %6llu %10llu  ", row.epoch, row.failovers) + note + "\n"
            }
        }
        Output.text(text)
    }
}

/// `vnetctl nodes [--detail] [NODE...]`
struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes", abstract: "Every host: liveness, revisions, and what of its state is not applied.",
        discussion: "--detail adds each host's inventory: its interface and bridge, every link (the operator's and vnet's) and address, and each object not applied with the reason.")
    @OptionGroup var bus: BusOptions
    @Flag(help: "Each host's inventory and failures in full.") var detail = false
    @Argument(help: "Only these hosts.") var names: [String] = []

    func run() throws {
        var infos = try bus.call(.listNodes(Vnet_V1_ListNodes())).nodes
        if !names.isEmpty {
            let known = Set(infos.map(\.nodeID))
            if let unknown = names.first(where: { !known.contains($0) }) { throw CommandFailure.invalidInput("no host '\(unknown)' in this cluster") }
            infos = infos.filter { names.contains($0.nodeID) }
        }
        let nodes = infos.map { NodeView($0, detail: detail) }
        if bus.json { try Output.json(nodes); return }
        if detail { Output.text(nodes.map(\.detailText).joined(separator: "\n")); return }
        Output.text(table([NodeView.header] + nodes.map(\.row)))
    }
}
