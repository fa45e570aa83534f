import ArgumentParser
import Foundation
import VNetBus
import VNetCore
import VNetProto

/// `vnetctl diagnose [--out FILE]`: the original document's troubleshooting list, fleet-wide. The coordinator
/// asks every reachable host for its routes, addresses, links, bridge ports, iptables-save, dhcpd's state,
/// configuration and leases, and log tail, adds its own view (hosts, revisions, desired states, log), and
/// vnetctl writes it all into one tar archive and prints what looks wrong. Exit 1 when something does.
struct DiagnoseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract: "Collect every host's network state into one archive and say what looks wrong.",
        discussion: "Exit status: 0 nothing looks wrong, 1 findings (the archive is written all the same), 2 no archive.")
    @Option(help: "The archive to write (a tar file; it must not exist). Default: vnet-diagnose-<UTC time>.tar here.") var out: String?
    @Option(name: .customLong("wait"), help: "Seconds to wait for the hosts' reports.") var waitSeconds = 5.0
    @OptionGroup var bus: BusOptions

    func validate() throws {
        guard waitSeconds >= 0.5, waitSeconds <= 60 else { throw ValidationError("--wait is 0.5-60 s") }
        if let out, FileManager.default.fileExists(atPath: out) { throw ValidationError("--out: \(out) exists; give a new name") }
    }

    func run() throws {
        let stamp = DiagnosticArchive.stamp(Date())
        let path = out ?? "vnet-diagnose-\(stamp).tar"
        if FileManager.default.fileExists(atPath: path) { throw CommandFailure.usage("\(path) exists; give --out with a new name") }
        if !bus.json { FileHandle.standardError.write(Data("diagnose: asking every host (up to \(waitSeconds) s)...\n".utf8)) }
        var request = Vnet_V1_Diagnose()
        request.timeoutMs = UInt32(waitSeconds * 1000)
        var options = bus
        options.timeout = max(bus.timeout, waitSeconds + 10)
        let reply = try options.call(.diagnose(request))
        let status = try? bus.call(.status(Vnet_V1_StatusRequest())).status
        let diagnosis = reply.diagnosis
        let summary = Self.summary(diagnosis, status: status, revision: reply.revision)
        let root = "vnet-diagnose-\(stamp)"
        var entries = [TarArchive.Entry(path: "\(root)/summary.txt", content: Array(summary.utf8))]
        entries += diagnosis.files.map { TarArchive.Entry(path: "\(root)/coordinator/\(DiagnosisSummary.safeName($0.name))", content: [UInt8]($0.content)) }
        for host in diagnosis.hosts {
            let directory = "\(root)/hosts/\(DiagnosisSummary.safeName(host.nodeID))"
            entries += host.files.map { TarArchive.Entry(path: "\(directory)/\(DiagnosisSummary.safeName($0.name))", content: [UInt8]($0.content)) }
        }
        let size: Int
        do { size = try DiagnosticArchive.write(entries, to: path) } catch { throw CommandFailure.usage("\(error)") }
        if bus.json {
            try Output.json(DiagnosisView(archive: path, files: entries.count, bytes: size,
                                          hosts: diagnosis.hosts.map(\.nodeID), unreachable: diagnosis.unreachable,
                                          findings: diagnosis.findings.map { .init(host: $0.host, text: $0.text) }))
        } else {
            Output.text(summary + "wrote \(path) (\(entries.count) files, \(size / 1024) KiB)\n")
        }
        if !diagnosis.findings.isEmpty { throw CommandFailure(code: 1, message: "") }
    }

    static func summary(_ diagnosis: Vnet_V1_Diagnosis, status: Vnet_V1_Status?, revision: UInt64) -> String {
        var headline = status.map { "cluster \($0.clusterID) (\($0.mode)) at revision \($0.revision)" } ?? "cluster at revision \(revision)"
        headline += ": \(diagnosis.hosts.count) hosts answered"
        if !diagnosis.unreachable.isEmpty { headline += "; no answer from \(diagnosis.unreachable.joined(separator: ", "))" }
        return DiagnosisSummary.text(headline: headline, findings: diagnosis.findings.map { ($0.host, $0.text) })
    }
}

struct DiagnosisView: Encodable {
    struct Finding: Encodable { var host: String; var text: String }
    var archive: String
    var files: Int
    var bytes: Int
    var hosts: [String]
    var unreachable: [String]
    var findings: [Finding]
}
