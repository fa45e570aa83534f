import Foundation
import VNetBus
import VNetSystem
import VNetCore
import VNetProto

/// `vnetctl diagnose` at the coordinator: ask every reachable host for its bundle (DiagnosisRun), and add the
/// coordinator's own view: every host's state and revisions, the cluster's status, each host's desired state
/// in words, the metrics and the coordinator's log tail.
extension Coordinator {
    func startDiagnosis(_ diagnose: Vnet_V1_Diagnose, requestID: String, prefix: [[UInt8]]) {
        let now = monotonicSeconds()
        let timeout = diagnose.timeoutMs == 0 ? 5000 : min(diagnose.timeoutMs, 60_000)
        let hosts = knownHosts
        operationCounter += 1
        let id = "diagnose-\(epoch)-\(operationCounter)"
        let (asked, actions) = session.startDiagnosis(id: id, prefix: prefix, requestID: requestID, hosts: hosts, timeout: Double(timeout) / 1000, at: now)
        _ = perform(actions)
        log.info("diagnosis \(id): asked \(asked) of \(hosts.count) hosts")
    }

    /// The answer to a diagnosis that is complete or out of time: the hosts' bundles and the coordinator's view.
    func finishDiagnosis(_ run: DiagnosisRun) {
        let view = currentView()
        let cluster = view.nodes.map {
            ClusterFindings.Host(name: $0.nodeID, state: HostLiveness(rawValue: $0.state) ?? .new, desiredRevision: $0.desiredRevision, appliedRevision: $0.appliedRevision, answered: true,
                                 notApplied: $0.failures.compactMap(ApplyReport.Failure.init(wire:)).map(\.description))
        }
        var reply = run.reply(cluster: cluster, files: diagnosticFiles(view))
        reply.revision = revision
        send(control, run.replyPrefix, .controlReply(reply))
    }

    func diagnosticFiles(_ view: ControlHandler.View) -> [Vnet_V1_DiagnosticFile] {
        func file(_ name: String, _ text: String) -> Vnet_V1_DiagnosticFile {
            var file = Vnet_V1_DiagnosticFile()
            file.name = name
            file.content = Data(text.utf8)
            return file
        }
        var nodes = "HOST STATE HEARTBEAT_AGE_MS DESIRED APPLIED ADDRESS DHCPD RULES DRIFT_REPAIRS LAST_DRIFT\n"
        for node in view.nodes {
            nodes += "\(node.nodeID) \(node.state) \(node.heartbeatAgeMs) \(node.desiredRevision) \(node.appliedRevision) \(node.address.isEmpty ? "-" : node.address) "
                + "\"\(node.dhcpdState)\" \(node.iptablesRules) \(node.driftRepairs) \"\(node.lastDrift)\"\n"
        }
        let status = view.status
        var files = [
            file("nodes.txt", nodes),
            file("status.txt", """
                cluster \(status.clusterID), mode \(status.mode), epoch \(status.epoch), revision \(status.revision)
                nodes up \(status.nodesUp), suspect \(status.nodesSuspect), down \(status.nodesDown)
                instances \(status.instances), groups \(status.groups)
                frames dropped \(status.droppedFrames), refused \(status.refusedFrames)
                state directory \(options.stateDirectory)

                """),
            file("metrics.txt", metrics.isEnabled ? metrics.render() : "(metrics are off: the coordinator runs without --metrics)\n"),
            file("coordinator.log", Log.sink.tail.joined(separator: "\n") + "\n"),
        ]
        for node in view.nodes where !node.links.isEmpty || !node.failures.isEmpty {
            var text = "# \(node.nodeID)'s last inventory: VNET_INTERFACE \(node.interface), VNET_BRIDGE \(node.bridge)\n"
            text += node.failures.isEmpty ? "every object of the applied state is on the host\n"
                : "not applied (revision \(node.failedRevision)):\n" + node.failures.compactMap(ApplyReport.Failure.init(wire:)).map { "  \($0)\n" }.joined()
            text += "links (name kind master state owner):\n" + node.links.map { "  \($0.name) \($0.kind.isEmpty ? "device" : $0.kind) \($0.master.isEmpty ? "-" : $0.master) \($0.up ? "up" : "down") \($0.vnetOwned ? "vnet" : "host")\n" }.joined()
            text += "addresses:\n" + node.addresses.map { "  \($0)\n" }.joined()
            files.append(file("inventory-\(node.nodeID).txt", text))
        }
        for host in desired.keys.sorted() {
            files.append(file("desired-\(host).txt", HostStateDescription.text(desired[host]!, revision: hostRevisions[host]?.revision ?? 0)))
        }
        return files
    }
}
