import ArgumentParser
import Foundation
import VNetAgent
import VNetBus
import VNetCore
import VNetLinux

/// `vnet-agent diagnose`: one host's diagnosis without the coordinator (it may be the thing that is down): the
/// same commands, files and findings as this host's part of `vnetctl diagnose`, against the state the agent
/// last applied (kept in its state directory). Reads only; the running agent is left alone.
struct DiagnoseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract: "Diagnose this host alone, against the state the agent last applied.",
        discussion: "Exit status: 0 nothing looks wrong, 1 findings (the archive is written all the same), 2 no archive.")

    @Option(name: .customLong("state-dir"), help: "The agent's state directory (its --state-dir).") var stateDir: String
    @Option(help: "The archive to write (a tar file; it must not exist). Default: vnet-diagnose-<host>-<UTC time>.tar here.") var out: String?
    @Flag(help: "Print one JSON object.") var json = false

    struct View: Encodable {
        var archive: String, host: String, appliedRevision: UInt64?, findings: [String]
    }

    func run() throws {
        let statePath = "\(stateDir)/linux-backend.pb"
        guard FileManager.default.fileExists(atPath: statePath) else {
            return try fail("\(statePath) is missing: give the state directory of an agent that runs --backend linux and has applied a state")
        }
        let backend = LinuxBackend(stateFile: statePath, dhcpd: DHCPDManager(runner: ProcessRunner(), settings: .init(directory: "\(stateDir)/dhcpd")))
        guard let held = backend.lastApplied else { return try fail("\(statePath) cannot be read as a host state") }
        let revision = AppliedRecord.load(from: stateDir)?.revision
        if !json { FileHandle.standardError.write(Data("diagnose: looking at \(held.host)...\n".utf8)) }
        let diagnosis = backend.diagnose(desired: held)
        let headline = "\(held.host) (\(held.role), \(held.mode.rawValue)), last applied revision \(revision.map(String.init) ?? "unknown"); the coordinator was not asked"
        let summary = DiagnosisSummary.text(headline: headline, findings: diagnosis.findings.map { (held.host, $0) })
        let stamp = DiagnosticArchive.stamp(Date())
        let root = "vnet-diagnose-\(DiagnosisSummary.safeName(held.host))-\(stamp)"
        let path = out ?? "\(root).tar"
        var entries = [TarArchive.Entry(path: "\(root)/summary.txt", content: Array(summary.utf8))]
        entries += (Agent.heldStateFiles(held, stateDirectory: stateDir) + diagnosis.files).map { TarArchive.Entry(path: "\(root)/\(DiagnosisSummary.safeName($0.name))", content: $0.content) }
        let size: Int
        do { size = try DiagnosticArchive.write(entries, to: path) } catch { return try fail("\(error)") }
        if json {
            try printJSON(View(archive: path, host: held.host, appliedRevision: revision, findings: diagnosis.findings))
        } else {
            print(summary + "wrote \(path) (\(entries.count) files, \(size / 1024) KiB)")
        }
        if !diagnosis.findings.isEmpty { throw ExitCode(1) }
    }

    /// No archive: said on stderr, exit status 2.
    func fail(_ message: String) throws {
        FileHandle.standardError.write(Data("vnet-agent diagnose: \(message)\n".utf8))
        throw ExitCode(2)
    }
}
