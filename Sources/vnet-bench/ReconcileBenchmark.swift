import ArgumentParser
import Foundation
import VNetCore
import VNetLinux
import VNetSystem

/// `vnet-bench reconcile` (root): the cost of one reconcile pass on a front end whose firewall holds N rules of
/// vnet's, when nothing drifted: the agent's whole pass (`LinuxBackend.apply` of the state it last applied:
/// links and addresses observed, router settings, the firewall checked), CPU of this process and of every
/// command it ran, two ways in the same namespace and run:
/// - vnet now: the firewall is read only when nf_tables' ruleset generation moved since it was verified;
/// - before (the baseline): vnet's part of both tables read with iptables-save and compared every pass.
struct ReconcileBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reconcile", abstract: "A reconcile pass with nothing drifted at N firewall rules: generation check against reading the tables (needs root).")

    @Option(help: "Table sizes, comma-separated.") var sizes = "1000,80000"
    @Option(help: "Passes measured per size and method (the median is shown).") var passes = 20
    @Flag(help: "Print one JSON object.") var json = false

    struct Row: Encodable {
        var rules: Int
        var generationCPUSeconds: Double, generationWallSeconds: Double
        var readEveryPassCPUSeconds: Double, readEveryPassWallSeconds: Double
    }

    /// CPU seconds used so far by this process and by its children that were waited for.
    static func cpuSeconds() -> Double {
        var own = rusage(), children = rusage()
        getrusage(RUSAGE_SELF.rawValue, &own)
        getrusage(RUSAGE_CHILDREN.rawValue, &children)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(own.ru_utime) + seconds(own.ru_stime) + seconds(children.ru_utime) + seconds(children.ru_stime)
    }

    func run() throws {
        guard getuid() == 0 else { throw ValidationError("needs root (it makes network namespaces)") }
        let counts = try benchmarkSizes(sizes, within: 100...200_000)
        guard (3...200).contains(passes) else { throw ValidationError("--passes is 3-200") }

        var rows: [Row] = []
        for count in counts {
            if !json { FileHandle.standardError.write(Data("reconcile: \(count) rules...\n".utf8)) }
            try Namespaces.scratchHost(["link add eth0 type veth peer name peer0", "link set eth0 up", "link set peer0 up", "address add 192.0.2.1/24 dev eth0"]) { runner, directory in
            var state = HostNetworkState(host: "fe", role: .frontend, mode: .managedNoVLAN)
            state.requiredLinks = ["eth0"]
            state.firewall = FirewallConfig(subnet: BenchFirewall.layout.subnet, groups: (0..<(count / 100)).map { BenchFirewall.group($0, rules: 100) },
                                            publicMappings: [], metadataTarget: nil)
            let stateFile = "\(directory)/backend.pb"
            let first = LinuxBackend(runner: runner, stateFile: stateFile, interface: "eth0")
            let report = try first.apply(state, revision: 1)
            guard report.isComplete else { throw ValidationError("the first apply failed: \(report.failures)") }

            func measure(_ backend: LinuxBackend) throws -> (cpu: Double, wall: Double) {
                var cpu: [Double] = [], wall: [Double] = []
                _ = try backend.apply(state, revision: 1)  // a backend's first pass verifies (reads) once
                for _ in 0..<passes {
                    let (cpuStart, wallStart) = (Self.cpuSeconds(), monotonicSeconds())
                    let pass = try backend.apply(state, revision: 1)
                    (cpu.append(Self.cpuSeconds() - cpuStart), wall.append(monotonicSeconds() - wallStart))
                    guard pass.operations == 0, pass.drift.isEmpty else { throw ValidationError("a pass found drift: \(pass.drift)") }
                }
                return (median(cpu), median(wall))
            }
            let now = try measure(first)
            let before = try measure(LinuxBackend(runner: runner, stateFile: stateFile, interface: "eth0", generation: RulesetGeneration { nil }))
            rows.append(Row(rules: count, generationCPUSeconds: now.cpu, generationWallSeconds: now.wall,
                            readEveryPassCPUSeconds: before.cpu, readEveryPassWallSeconds: before.wall))
            }
        }

        let largest = rows.last?.generationCPUSeconds ?? 0
        if json {
            struct Result: Encodable { var rows: [Row]; var passes: Int; var meetsTarget: Bool }
            try printJSON(Result(rows: rows, passes: passes, meetsTarget: largest < 0.010))
            return
        }
        print("RECONCILE PASS, NOTHING DRIFTED   GENERATION CHECK (now)        READ EVERY PASS (before)")
        print("                                  CPU        wall               CPU        wall        CPU ratio")
        for row in rows {
            print(String(format: "%7d rules                     %6.1f ms  %6.1f ms          %6.1f ms  %6.1f ms   %6.0fx", row.rules,
                         row.generationCPUSeconds * 1000, row.generationWallSeconds * 1000,
                         row.readEveryPassCPUSeconds * 1000, row.readEveryPassWallSeconds * 1000,
                         row.readEveryPassCPUSeconds / max(row.generationCPUSeconds, 1e-6)))
        }
        print(String(format: "target: under 10 ms of CPU per pass at the largest (%.1f ms, %.2f%% of a core at a 10 s interval): %@",
                     largest * 1000, largest / 10 * 100, largest < 0.010 ? "MEETS" : "MISSES"))
    }
}
