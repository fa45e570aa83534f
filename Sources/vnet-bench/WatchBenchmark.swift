import ArgumentParser
import Foundation
import VNetBus
import VNetLinux
import VNetSystem

/// `vnet-bench watch` (root): the steady cost of `vnet-coordinator --watch-vlans`, a front end and N-1 nodes in
/// namespaces (the bring-up benchmark's lab) with real agents: the probe frames per second the switch forwards
/// (an nftables counter on EtherType 0x88b5 in the switch's bridge) and the CPU the coordinator and agents use
/// (their utime and stime over the window), against the same lab without the watch, measured in the same run.
struct WatchBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch", abstract: "The steady cost of the continuous VLAN watch (root).")

    @Option(help: "Hosts, the front end included.") var hosts = 16
    @Option(help: "Seconds measured, once the watch has settled.") var seconds = 20.0
    @Option(help: "The watch's budget, frames per second for the cluster.") var budget = 500.0
    @Flag(help: "Print one JSON object.") var json = false

    struct Figure: Encodable {
        var watch: Bool, hosts: Int, budget: Double, seconds: Double
        var probeFramesPerSecond: Double
        var cpuPercentCoordinator: Double, cpuPercentAgents: Double
        var rounds: Int
    }

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("watch needs root (network namespaces)") }
        guard (3...64).contains(hosts), (5...600).contains(seconds), (16...100_000).contains(budget) else {
            throw ValidationError("--hosts 3-64, --seconds 5-600, --budget 16-100000")
        }
    }

    func run() throws {
        let figures = [try measure(watch: false), try measure(watch: true)]
        if json { try printJSON(figures); return }
        print("WATCH (\(hosts) hosts, \(Int(seconds)) s)   PROBE FRAMES/S   CPU COORDINATOR   CPU AGENTS (SUM)   ROUNDS")
        for figure in figures {
            print(String(format: "%-28@  %10.1f      %9.2f %%        %9.2f %%      %5d",
                         (figure.watch ? "--watch-vlans (budget \(Int(figure.budget)))" : "without the watch") as NSString,
                         figure.probeFramesPerSecond, figure.cpuPercentCoordinator, figure.cpuPercentAgents, figure.rounds))
        }
    }

    /// utime + stime of a process, in seconds.
    func cpu(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func measure(watch: Bool) throws -> Figure {
        progress("\(hosts) hosts, \(watch ? "with" : "without") the watch")
        let lab = try BringUpLab(nodes: hosts - 1, instancesPerNode: 0)
        defer { lab.tearDown(keepLogs: false) }
        if watch { lab.coordinatorArguments = ["--watch-vlans", "--watch-budget", String(budget)] }
        try lab.build()
        let sw = ProcessRunner(prefix: ["ip", "netns", "exec", lab.ns("sw")])
        for command in [["nft", "add", "table", "bridge", "bench"],
                        ["nft", "add chain bridge bench count { type filter hook forward priority 0 ; }"],
                        ["nft", "add rule bridge bench count ether type 0x88b5 counter"],
                        ["nft", "add rule bridge bench count vlan type 0x88b5 counter"]] {
            _ = try sw.run(command, input: nil)
        }
        try lab.startDaemons()
        func frames() throws -> Double {
            let text = String(decoding: try sw.run(["nft", "list", "chain", "bridge", "bench", "count"], input: nil), as: UTF8.self)
            return text.matches(of: /packets ([0-9]+)/).compactMap { Double($0.1) }.reduce(0, +)
        }
        // Settle: every agent up, the watch's paths known.
        Thread.sleep(forTimeInterval: 5)
        let pids = lab.daemons.filter(\.isRunning).map(\.processIdentifier)
        let coordinatorPID = lab.daemons.first!.processIdentifier
        let startFrames = try frames()
        let startCPU = pids.map(cpu)
        let startLines = agentRoundLines(lab)
        let start = monotonicSeconds()
        Thread.sleep(forTimeInterval: seconds)
        let elapsed = monotonicSeconds() - start
        let endCPU = pids.map(cpu)
        let probeFrames = (try frames() - startFrames) / elapsed
        var coordinatorCPU = 0.0, agentsCPU = 0.0
        for (index, pid) in pids.enumerated() {
            let used = (endCPU[index] - startCPU[index]) / elapsed * 100
            if pid == coordinatorPID { coordinatorCPU += used } else { agentsCPU += used }
        }
        return Figure(watch: watch, hosts: hosts, budget: budget, seconds: elapsed, probeFramesPerSecond: probeFrames,
                      cpuPercentCoordinator: coordinatorCPU, cpuPercentAgents: agentsCPU, rounds: agentRoundLines(lab) - startLines)
    }

    /// The front end's agent logs one line per verification it probes in: the watch's rounds.
    func agentRoundLines(_ lab: BringUpLab) -> Int {
        let log = (try? String(contentsOfFile: "\(lab.directory)/agent-fe.log", encoding: .utf8)) ?? ""
        return log.components(separatedBy: ": probing ").count - 1
    }

    func progress(_ line: String) {
        if !json { FileHandle.standardError.write(Data("watch: \(line)\n".utf8)) }
    }
}
