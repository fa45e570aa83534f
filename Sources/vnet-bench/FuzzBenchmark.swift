import ArgumentParser
import Foundation
import VNetBus
import VNetSystem
import VNetCore
import VNetFuzzTargets

/// `vnet-bench fuzz`: every parser that reads what others wrote, fed mutated inputs (seeded, reproducible):
/// eucalyptus.conf (parse and validate, both roles), bus envelopes (decode, header peek, host-state mapping),
/// DHCP replies, VLAN probe frames and iptables-preload files. A crash stops the run (the process dies, naming
/// the target and the seed in the last progress line); the slowest single input is reported, to catch
/// anything close to a hang. Mutations start from valid inputs (the example configs, real envelopes), so most
/// inputs get deep into the parsers instead of failing at the first byte.
struct FuzzBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fuzz", abstract: "Feed every input parser mutated inputs; report inputs run and time.")

    @Option(help: "Inputs per target.") var inputs = 1_000_000
    @Option(help: "Seed (the same seed gives the same inputs).") var seed: UInt64 = 1
    @Option(help: "Only this target: conf, envelope, dhcp, probe, preload, omapi, leases, dhcp-frame, lldp, ec2.") var only: String?
    @Flag(help: "Print one JSON object.") var json = false
    @Option(name: .customLong("write-corpus"), help: "Write the starting inputs to this directory (for the libFuzzer harness, Fuzz/run.sh) and stop.")
    var writeCorpus: String?

    struct Figure: Encodable { var target: String; var inputs: Int; var seconds: Double; var slowestMicroseconds: Double; var accepted: Int }

    func run() throws {
        if let writeCorpus {
            try FileManager.default.createDirectory(atPath: writeCorpus, withIntermediateDirectories: true)
            for target in FuzzTargets.names where only == nil || only == target {
                for (index, input) in FuzzTargets.corpus(target).enumerated() {
                    // The harness reads the first byte as the variant.
                    try Data([0] + input).write(to: URL(fileURLWithPath: "\(writeCorpus)/\(target)-\(index)"))
                }
            }
            return
        }
        var figures: [Figure] = []
        for target in FuzzTargets.names where only == nil || only == target {
            if !json { FileHandle.standardError.write(Data("fuzz: \(target), \(inputs) inputs, seed \(seed)\n".utf8)) }
            figures.append(run(target))
        }
        if json { try printJSON(figures); return }
        // A crash would have ended the process before this table: reaching it means none.
        var rows = [["TARGET", "INPUTS", "TIME", "SLOWEST INPUT", "ACCEPTED AS VALID"]]
        for figure in figures {
            rows.append([figure.target, String(figure.inputs), String(format: "%.1f s", figure.seconds),
                         String(format: "%.0f us", figure.slowestMicroseconds), String(figure.accepted)])
        }
        print(table(rows), terminator: "")
    }

    func run(_ target: String) -> Figure {
        var generator = SeededGenerator(seed: seed &+ UInt64(target.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        let corpus = FuzzTargets.corpus(target)
        var accepted = 0
        var slowest = 0.0
        let start = monotonicSeconds()
        for index in 0..<inputs {
            let input = FuzzTargets.mutate(corpus[index % corpus.count], &generator)
            let before = monotonicSeconds()
            if FuzzTargets.feed(target, input, variant: index) { accepted += 1 }
            slowest = max(slowest, monotonicSeconds() - before)
        }
        return Figure(target: target, inputs: inputs, seconds: monotonicSeconds() - start, slowestMicroseconds: slowest * 1e6, accepted: accepted)
    }
}
