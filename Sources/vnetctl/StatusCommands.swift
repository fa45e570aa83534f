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
