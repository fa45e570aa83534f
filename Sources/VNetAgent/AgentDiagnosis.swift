import Foundation
import VNetBus
import VNetCore
import VNetHost
import VNetProto

/// This host's answer to `vnetctl diagnose`: the backend's files and findings, and the agent's own view (the
/// state it holds, its record, its metrics, its log tail). The backend's part is collected on the host worker,
/// like an apply; the rest in the loop.
extension Agent {
    /// What an agent holds, for a bundle: the state in words and its applied record file as it is on disk
    /// (also `vnet-agent diagnose`).
    public static func heldStateFiles(_ state: HostNetworkState?, stateDirectory: String) -> [(name: String, content: [UInt8])] {
        let revision = AppliedRecord.load(from: stateDirectory)?.revision ?? 0
        let record = FileManager.default.contents(atPath: AppliedRecord.path(in: stateDirectory)).map { [UInt8]($0) } ?? Array("(none)\n".utf8)
        return [("held-state.txt", Array((state.map { HostStateDescription.text($0, revision: revision) } ?? "holding no desired state\n").utf8)),
                ("applied.json", record)]
    }

    func sendDiagnosis(_ command: Vnet_V1_DiagnoseCommand, _ collected: HostDiagnosis) {
        var report = Vnet_V1_DiagnoseReport()
        report.diagnoseID = command.diagnoseID
        report.nodeID = options.nodeID
        report.appliedRevision = held
        var files = collected.files
        files += Self.heldStateFiles(session.heldState, stateDirectory: options.stateDirectory)
        files.append(("metrics.txt", Array((metrics.isEnabled ? metrics.render() : "(metrics are off: the agent runs without --metrics)\n").utf8)))
        files.append(("agent.log", Array((Log.sink.tail.joined(separator: "\n") + "\n").utf8)))
        // The coordinator takes frames of up to 4 MiB: the largest files give up their beginnings first.
        while files.reduce(0, { $0 + $1.content.count }) > 3 << 20, let largest = files.indices.max(by: { files[$0].content.count < files[$1].content.count }) {
            let content = files[largest].content
            files[largest].content = Array("[first \(content.count / 2) bytes left out]\n".utf8) + content.suffix(content.count / 2)
        }
        report.files = files.map { file in
            var wire = Vnet_V1_DiagnosticFile()
            wire.name = file.name
            wire.content = Data(file.content)
            return wire
        }
        report.findings = collected.findings
        log("diagnosis \(command.diagnoseID): \(files.count) files, \(collected.findings.count) findings", revision: held)
        send(.diagnoseReport(report))
    }
}
