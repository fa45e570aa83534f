import ArgumentParser
import Foundation
import VNetCore
import VNetLinux
import VNetSystem

/// `vnet-bench node-apply` (root): the cost on a node of one instance added (its tap made and attached to the
/// bridge) when the node already runs 5 and 500 instances, with the agent's Linux backend in a namespace of its
/// own: wall time of the apply and the commands it ran, and the observation of the host's links and addresses
/// two ways in the same namespace (rtnetlink dumps, as the agent does now; `ip -json` and its parsing, as before).
struct NodeApplyBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node-apply", abstract: "One instance added on a node with 5 and 500 instances (needs root).")

    @Option(help: "Instances already on the node, comma-separated.") var sizes = "5,500"
    @Option(help: "Instances added one at a time per size (the median is shown).") var repeats = 5
    @Flag(help: "Print one JSON object.") var json = false

    struct Row: Encodable { var instances: Int; var seconds: Double; var commands: Int; var netlinkObserveSeconds: Double; var ipJSONObserveSeconds: Double }

    /// Every command passed on to the real runner, counted.
    final class CountingRunner: CommandRunner, @unchecked Sendable {
        let inner: ProcessRunner
        var commands = 0
        init(_ inner: ProcessRunner) { self.inner = inner }
        var kernel: KernelNamespace { inner.kernel }
        func run(_ arguments: [String], input: [UInt8]?) throws(CommandError) -> [UInt8] {
            commands += 1
            return try inner.run(arguments, input: input)
        }
    }

    func run() throws {
        guard getuid() == 0 else { throw ValidationError("needs root (it makes network namespaces)") }
        let counts = try benchmarkSizes(sizes, within: 1...4000)
        guard (1...50).contains(repeats) else { throw ValidationError("--repeats is 1-50") }
        func vif(_ number: Int) -> HostNetworkState.Vif {
            let id = InstanceID(number: UInt32(number))
            return .init(name: "vn-" + id.hexDigits, bridge: "br0", mac: MACPrefix.eucalyptusDefault.mac(for: id), instance: id, createTap: true)
        }
        var rows: [Row] = []
        for count in counts {
            if !json { FileHandle.standardError.write(Data("node-apply: \(count) instances...\n".utf8)) }
            try Namespaces.scratchHost(["link add eth0 type veth peer name peer0", "link add br0 type bridge", "link set eth0 master br0",
                                        "link set eth0 up", "link set peer0 up", "link set br0 up"]) { processRunner, directory in
            let runner = CountingRunner(processRunner)
            let backend = LinuxBackend(runner: runner, stateFile: "\(directory)/backend.pb", interface: "eth0", bridge: "br0")
            var state = HostNetworkState(host: "node1", role: .node, mode: .managedNoVLAN)
            state.requiredLinks = ["br0"]
            state.vifs = (1...count).map(vif)
            let first = try backend.apply(state, revision: 1)
            guard first.isComplete else { throw ValidationError("the first apply failed: \(first.failures.prefix(3))") }
            var samples: [(seconds: Double, commands: Int)] = [], netlink: [Double] = [], ipJSON: [Double] = []
            for index in 0..<repeats {
                state.vifs.append(vif(count + 1 + index))
                runner.commands = 0
                let start = monotonicSeconds()
                let report = try backend.apply(state, revision: UInt64(2 + index))
                samples.append((monotonicSeconds() - start, runner.commands))
                guard report.isComplete else { throw ValidationError("an apply failed: \(report.failures.prefix(3))") }
                let observed = monotonicSeconds()
                let (links, _) = try NetlinkObservation.observe(in: runner.kernel)
                let parsed = monotonicSeconds()
                let jsonLinks = try LinkObservation.links(fromJSON: try runner.inner.run(["ip", "-json", "-details", "link", "show"], input: nil))
                _ = try LinkObservation.addresses(fromJSON: try runner.inner.run(["ip", "-json", "address", "show"], input: nil))
                (netlink.append(parsed - observed), ipJSON.append(monotonicSeconds() - parsed))
                guard links == jsonLinks else { throw ValidationError("rtnetlink and ip -json disagree about the links") }
            }
            let middle = samples.sorted { $0.seconds < $1.seconds }[samples.count / 2]
            rows.append(Row(instances: count, seconds: middle.seconds, commands: middle.commands,
                            netlinkObserveSeconds: median(netlink), ipJSONObserveSeconds: median(ipJSON)))
            }
        }
        let ratio = (rows.last?.seconds ?? 0) / max(rows.first?.seconds ?? 1, 1e-9)
        if json {
            struct Result: Encodable { var rows: [Row]; var largestOverSmallest: Double }
            try printJSON(Result(rows: rows, largestOverSmallest: ratio))
            return
        }
        print("ONE INSTANCE ADDED ON A NODE   APPLY       COMMANDS   OBSERVING: RTNETLINK (now)   IP -JSON (before)")
        for row in rows {
            print(String(format: "%5d instances               %6.1f ms    %3d        %6.2f ms               %6.1f ms (%4.0fx)", row.instances, row.seconds * 1000, row.commands,
                         row.netlinkObserveSeconds * 1000, row.ipJSONObserveSeconds * 1000, row.ipJSONObserveSeconds / max(row.netlinkObserveSeconds, 1e-9)))
        }
        print(String(format: "largest over smallest: %.2fx", ratio))
    }
}
