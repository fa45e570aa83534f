import ArgumentParser
import VNetCore
import VNetProto

/// `vnetctl status`
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The coordinator's summary.")
    @OptionGroup var bus: BusOptions

    struct View: Encodable {
        var clusterId: String, mode: String, revision: UInt64, nodesUp: UInt32, nodesSuspect: UInt32, nodesDown: UInt32
        var instances: UInt32, groups: UInt32, droppedFrames: UInt64, refusedFrames: UInt64
    }

    func run() throws {
        let s = try bus.call(.status(Vnet_V1_StatusRequest())).status
        let view = View(clusterId: s.clusterID, mode: s.mode, revision: s.revision, nodesUp: s.nodesUp, nodesSuspect: s.nodesSuspect,
                        nodesDown: s.nodesDown, instances: s.instances, groups: s.groups, droppedFrames: s.droppedFrames, refusedFrames: s.refusedFrames)
        if bus.json { try Output.json(view); return }
        Output.text("""
        cluster \(s.clusterID): \(s.mode), revision \(s.revision)
        nodes: \(s.nodesUp) up, \(s.nodesSuspect) suspect, \(s.nodesDown) down or never heard from
        \(s.instances) instances, \(s.groups) groups
        frames dropped (malformed, wrong version or cluster): \(s.droppedFrames); refused (unknown or mismatched key): \(s.refusedFrames)

        """)
    }
}

/// `vnetctl nodes`
struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "Every host: liveness and revisions.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        let nodes = try bus.call(.listNodes(Vnet_V1_ListNodes())).nodes.map(NodeView.init)
        if bus.json { try Output.json(nodes); return }
        Output.text(table([NodeView.header] + nodes.map(\.row)))
    }
}
