import ArgumentParser
import Foundation
import VNetBus
import VNetSystem
import VNetCore
import VNetLinux

/// `vnet-bench vlan`: all pairs of N hosts probed on V VIDs (plus the untagged control) at once, each host a
/// namespace on a switch namespace running `vnet-agent probe`. Measured: from starting the probers to the moment
/// the last host had an answer from every peer on every VID (CLOCK_MONOTONIC is shared by every namespace), and
/// the frames sent, for 8, 16 and 32 hosts so that the scaling shows. Contained: namespaces `vnv-*` only.
struct VLANBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vlan", abstract: "Measure fleet-wide VLAN probing in namespaces (root).")

    @Option(help: "Host counts, comma-separated.") var hosts = "8,16,32"
    @Option(help: "How many VIDs (10, 11, ...).") var vlans = 8
    @Option(help: "Probes per peer and VID (rounds; a lost frame is retried by the next).") var count = 2
    @Flag(help: "Print one JSON object.") var json = false

    struct Figure: Encodable {
        var hosts: Int, vlans: Int
        var probesSent: Int, repliesReceived: Int
        var secondsToAllVerified: Double
        var allOK: Bool
    }

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("vlan needs root (network namespaces)") }
        guard (1...64).contains(vlans), (1...10).contains(count) else { throw ValidationError("--vlans 1-64, --count 1-10") }
    }

    func run() throws {
        let counts = hosts.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ (2...64).contains($0) }) else { throw ValidationError("--hosts: counts of 2-64, like 8,16,32") }
        var figures: [Figure] = []
        for count in counts {
            if !json { FileHandle.standardError.write(Data("vlan: \(count) hosts, \(vlans) VIDs\n".utf8)) }
            figures.append(try measure(hostCount: count))
        }
        if json { try printJSON(figures); return }
        var rows = [["HOSTS", "VIDS", "PROBES SENT", "REPLIES", "TO ALL VERIFIED", "TARGET", "", "VERDICT"]]
        for figure in figures {
            let target = figure.hosts == 16 && figure.vlans == 8 ? "< 2 s" : "-"
            rows.append([String(figure.hosts), String(figure.vlans), String(figure.probesSent), String(figure.repliesReceived),
                         String(format: "%.2f s", figure.secondsToAllVerified), target,
                         target == "-" ? "" : (figure.allOK && figure.secondsToAllVerified < 2 ? "ok" : "MISSES"),
                         figure.allOK ? "every pair OK" : "NOT ALL OK"])
        }
        print(table(rows), terminator: "")
    }

    func measure(hostCount: Int) throws -> Figure {
        Namespaces.remove(prefix: "vnv-")
        defer { Namespaces.remove(prefix: "vnv-") }
        let names = (1...hostCount).map { String(format: "h%02d", $0) }
        let mac = { (index: Int) in String(format: "02:00:00:00:%02x:%02x", index >> 8, index & 0xff) }
        try Namespaces.batch(nil, ["netns add vnv-sw"] + names.map { "netns add vnv-\($0)" })
        try Namespaces.batch("vnv-sw", ["link add sw type bridge", "link set sw up"] + names.enumerated().flatMap { index, name in
            ["link add p-\(name) type veth peer name eth0 netns vnv-\(name)", "link set p-\(name) master sw", "link set p-\(name) up"]
        })
        for (index, name) in names.enumerated() { try Namespaces.batch("vnv-\(name)", ["link set eth0 address \(mac(index + 1))", "link set eth0 up"]) }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-vlan-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let agent = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vnet-agent").path
        let vidList = (10..<(10 + vlans)).map(String.init).joined(separator: ",")
        let peers = names.enumerated().flatMap { ["--peer", "\($1)=\(mac($0 + 1))"] }
        // Long enough for the slowest host to be answered; the figure is when the last one was.
        let duration = max(2.0, Double(hostCount) * Double(vlans + 1) * Double(count) / 400)
        // Every prober is started and listening before the common moment they all begin to probe.
        let start = monotonicNanoseconds() + UInt64(0.5e9 + Double(hostCount) * 10e6)
        let pids = try names.map { name in
            try ProcessRunner(prefix: ["ip", "netns", "exec", "vnv-\(name)"]).start(
                [agent, "probe", "--interface", "eth0", "--name", name] + peers
                    + ["--vlans", vidList, "--count", String(count), "--duration", String(duration), "--probe-at", String(start), "--json"],
                output: "\(directory)/\(name).json")
        }
        for pid in pids { var status: Int32 = 0; waitpid(pid, &status, 0) }
        struct Report: Decodable { var completedAtMonotonicNanoseconds: UInt64?; var observations: [VLANVerification.Observation] }
        let reports = try names.map { try JSONDecoder().decode(Report.self, from: Data(contentsOf: URL(fileURLWithPath: "\(directory)/\($0).json"))) }
        let observations = reports.flatMap(\.observations)
        let verdict = VLANVerification.judge(hosts: names, vlans: Array(10..<(10 + vlans)), observations: observations)
        let last = reports.compactMap(\.completedAtMonotonicNanoseconds).max() ?? monotonicNanoseconds()
        let complete = reports.allSatisfy { $0.completedAtMonotonicNanoseconds != nil }
        return Figure(hosts: hostCount, vlans: vlans, probesSent: observations.reduce(0) { $0 + $1.sent },
                      repliesReceived: observations.reduce(0) { $0 + $1.replies },
                      secondsToAllVerified: complete ? Double(last - start) / 1e9 : .infinity, allOK: verdict.allOK && complete)
    }
}
