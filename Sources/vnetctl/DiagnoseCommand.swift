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
        let stamp = Self.stamp(Date())
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
        entries += diagnosis.files.map { TarArchive.Entry(path: "\(root)/coordinator/\(Self.safeName($0.name))", content: [UInt8]($0.content)) }
        for host in diagnosis.hosts {
            entries += host.files.map { TarArchive.Entry(path: "\(root)/hosts/\(Self.safeName(host.nodeID))/\(Self.safeName($0.name))", content: [UInt8]($0.content)) }
        }
        let bytes: [UInt8]
        do { bytes = try TarArchive.archive(entries, modified: Int(Date().timeIntervalSince1970)) } catch {
            throw CommandFailure.usage("cannot build the archive: \(error)")
        }
        guard FileManager.default.createFile(atPath: path + ".partial", contents: Data(bytes)), rename(path + ".partial", path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: path + ".partial")
            throw CommandFailure.usage("cannot write \(path): \(reason)")
        }
        if bus.json {
            try Output.json(DiagnosisView(archive: path, files: entries.count, bytes: bytes.count,
                                          hosts: diagnosis.hosts.map(\.nodeID), unreachable: diagnosis.unreachable,
                                          findings: diagnosis.findings.map { .init(host: $0.host, text: $0.text) }))
        } else {
            Output.text(summary + "wrote \(path) (\(entries.count) files, \(bytes.count / 1024) KiB)\n")
        }
        if !diagnosis.findings.isEmpty { throw CommandFailure(code: 1, message: "") }
    }

    static func summary(_ diagnosis: Vnet_V1_Diagnosis, status: Vnet_V1_Status?, revision: UInt64) -> String {
        var out = status.map { "cluster \($0.clusterID) (\($0.mode)) at revision \($0.revision)" } ?? "cluster at revision \(revision)"
        out += ": \(diagnosis.hosts.count) hosts answered"
        out += diagnosis.unreachable.isEmpty ? "\n" : "; no answer from \(diagnosis.unreachable.joined(separator: ", "))\n"
        if diagnosis.findings.isEmpty {
            out += "nothing looks wrong\n"
        } else {
            out += "what looks wrong:\n"
            for finding in diagnosis.findings { out += "  \(printable(finding.host)): \(printable(finding.text))\n" }
        }
        return out
    }

    /// Text from the bus, as a terminal may show it: control characters (escape sequences) become "?".
    static func printable(_ text: String) -> String {
        String(text.prefix(2000).unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) })
    }

    /// A name from the bus becomes one path component of the archive: no directories, no dot files.
    static func safeName(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        var safe = String(name.prefix(64).map { allowed.contains($0) ? $0 : "_" })
        while safe.hasPrefix(".") { safe = "_" + safe.dropFirst() }
        return safe.isEmpty ? "_" : safe
    }

    static func stamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec)
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
