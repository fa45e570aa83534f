import Foundation
import VNetBus
import VNetCore
import VNetProto

/// One `vnetctl diagnose` in progress at the coordinator: every reachable host was asked for its bundle; the
/// answer is given when all reported or the time is up, with the coordinator's own files and the findings
/// of the cluster (hosts DOWN or behind) and of each host.
struct DiagnosisRun {
    let id: String
    let replyPrefix: [[UInt8]]
    let requestID: String
    /// Every known host, and those asked (UP or SUSPECT, with a route).
    let hosts: [String]
    let asked: Set<String>
    var reports: [String: Vnet_V1_DiagnoseReport] = [:]
    let deadline: Double

    var complete: Bool { asked.allSatisfy { reports[$0] != nil } }

    /// `cluster`: the coordinator's view of every host when the answer is made; `files`: its own.
    func reply(cluster: [ClusterFindings.Host], files: [Vnet_V1_DiagnosticFile]) -> Vnet_V1_ControlReply {
        var diagnosis = Vnet_V1_Diagnosis()
        diagnosis.files = files
        diagnosis.hosts = hosts.compactMap { reports[$0] }
        diagnosis.unreachable = hosts.filter { reports[$0] == nil }
        let answered = Set(reports.keys)
        let hostsSeen = cluster.map { host -> ClusterFindings.Host in
            var host = host
            host.answered = answered.contains(host.name) || !asked.contains(host.name)
            return host
        }
        var findings = ClusterFindings.findings(hostsSeen).map { finding -> Vnet_V1_Finding in
            var wire = Vnet_V1_Finding()
            wire.host = finding.host
            wire.text = finding.text
            return wire
        }
        for host in hosts {
            guard let report = reports[host] else { continue }
            var texts = report.findings
            if !report.error.isEmpty { texts.append("could not collect everything: \(report.error)") }
            findings += texts.map { text in
                var wire = Vnet_V1_Finding()
                wire.host = host
                wire.text = text
                return wire
            }
        }
        diagnosis.findings = findings
        var reply = Vnet_V1_ControlReply()
        reply.requestID = requestID
        reply.ok = true
        reply.diagnosis = diagnosis
        return reply
    }
}
