import ArgumentParser
import Foundation
import VNetCore

/// `vnet-bench plan`: allocate, plan and render a large cluster, stage by stage.
///
/// Target (issue 2): 1000 nodes, 4000 groups of 20 rules, 100 000 instances planned and rendered in under
/// 1 s and 300 MiB on a 2-core machine.
struct PlanBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Plan and render a synthetic cluster; print time per stage and peak memory.")

    @Option var nodes = 1000
    @Option var groups = 4000
    @Option(name: .customLong("rules-per-group")) var rulesPerGroup = 20
    @Option var instances = 100_000
    @Option(name: .customLong("public-ips")) var publicIPs = 1000
    @Option(help: "Timed runs; the median is reported (peak memory covers all of them).") var iterations = 5
    @Flag(help: "Print one JSON object.") var json = false

    static let targetSeconds = 1.0
    static let targetMiB = 300.0

    func validate() throws {
        guard nodes > 0, groups > 0, instances >= 0, iterations > 0 else { throw ValidationError("counts must be positive") }
        guard groups <= NetworkLayout.maxNetworks else { throw ValidationError("at most \(NetworkLayout.maxNetworks) groups") }
        guard instances <= groups * 61 else { throw ValidationError("at most 61 instances per group with VNET_ADDRSPERNET 64") }
        guard publicIPs <= 65_536, publicIPs <= instances else { throw ValidationError("public IPs: at most 65536 and at most one per instance") }
    }

    struct Stages: Encodable {
        var allocate = 0.0, plan = 0.0, render = 0.0
        var total: Double { allocate + plan + render }
    }

    func run() throws {
        let config = try benchmarkConfig()
        var samples: [Stages] = []
        var outputBytes = 0, operations = 0, iptablesRules = 0
        for _ in 0..<iterations {
            var stages = Stages()
            let clock = ContinuousClock()
            var start = clock.now
            let cluster = try allocate(config)
            stages.allocate = seconds(clock.now - start)

            start = clock.now
            let states = try HostPlanner(config: config).desiredStates(for: cluster)
            stages.plan = seconds(clock.now - start)

            start = clock.now
            var bytes = 0, ops = 0
            for state in states.values {
                ops += KernelPlanner.bringUp(state).count
                if let dhcpd = state.dhcpd { bytes += DHCPDConfRenderer.render(dhcpd).utf8.count }
                if let firewall = state.firewall {
                    let filter = IPTablesRenderer.filter(firewall)
                    bytes += filter.utf8.count + IPTablesRenderer.nat(firewall).utf8.count
                    iptablesRules = filter.utf8.split(separator: UInt8(ascii: "\n")).count { $0.first == UInt8(ascii: "-") }
                }
            }
            stages.render = seconds(clock.now - start)
            outputBytes = bytes
            operations = ops
            samples.append(stages)
        }
        let median = samples.sorted { $0.total < $1.total }[samples.count / 2]
        let peakMiB = peakResidentMiB()
        let result = Result(nodes: nodes, groups: groups, rulesPerGroup: rulesPerGroup, instances: instances,
                            publicIPs: publicIPs, iterations: iterations, medianSeconds: median,
                            totalSeconds: median.total, peakResidentMiB: peakMiB, renderedBytes: outputBytes,
                            kernelOperations: operations, iptablesRules: iptablesRules,
                            timeRatioToTarget: median.total / Self.targetSeconds, memoryRatioToTarget: peakMiB / Self.targetMiB,
                            meetsTarget: median.total < Self.targetSeconds && peakMiB < Self.targetMiB)
        if json {
            try printJSON(result)
        } else {
            print(result.text)
        }
    }

    struct Result: Encodable {
        var nodes, groups, rulesPerGroup, instances, publicIPs, iterations: Int
        var medianSeconds: Stages
        var totalSeconds, peakResidentMiB: Double
        var renderedBytes, kernelOperations, iptablesRules: Int
        var timeRatioToTarget, memoryRatioToTarget: Double
        var meetsTarget: Bool

        var text: String {
            func ms(_ s: Double) -> String { String(format: "%8.1f ms", s * 1000) }
            return """
            cluster: \(nodes) nodes, \(groups) groups x \(rulesPerGroup) rules, \(instances) instances, \(publicIPs) public IPs
            median of \(iterations) runs:
              allocate  \(ms(medianSeconds.allocate))   (groups, rules, addresses, MACs, public IPs)
              plan      \(ms(medianSeconds.plan))   (desired state of \(nodes + 1) hosts)
              render    \(ms(medianSeconds.render))   (\(kernelOperations) kernel operations, dhcpd.conf, \(iptablesRules) iptables rules; \(renderedBytes / 1024) KiB of text)
              total     \(ms(totalSeconds))   target < 1000 ms: \(String(format: "%.2f", timeRatioToTarget))x of target
            peak resident memory: \(String(format: "%.1f", peakResidentMiB)) MiB   target < 300 MiB: \(String(format: "%.2f", memoryRatioToTarget))x of target
            \(meetsTarget ? "MEETS TARGET" : "MISSES TARGET")
            """
        }
    }

    func benchmarkConfig() throws -> VNetConfig {
        // Public addresses from 198.18.0.0/15 (RFC 2544's benchmarking range), never routed anywhere.
        let last = IPv4Address(198, 18, 0, 0).advanced(by: UInt32(max(publicIPs, 1) - 1))
        let text = benchmarkConfigText([#"VNET_PUBLICIPS="198.18.0.0-\#(last)""#, #"VNET_CLOUDIP="192.0.2.10""#])
        let check = ConfigValidator.validate(text: text, role: .frontend)
        guard let config = check.config else { throw ValidationError("benchmark config invalid: \(check.diagnostics)") }
        return config
    }

    func allocate(_ config: VNetConfig) throws -> ClusterState {
        var allocator = try Allocator(config: config, state: ClusterState(frontend: "fe"))
        for n in 0..<nodes { try allocator.addNode(.init(name: "node\(n)", interface: "eth0", bridge: "br0")) }
        let ids = (0..<groups).map { GroupID(user: "user\($0 / 10)", name: "group\($0)") }
        for id in ids { try allocator.createGroup(id) }
        for (index, id) in ids.enumerated() {
            let rules = (0..<rulesPerGroup).map { r -> SecurityRule in
                switch r % 4 {
                case 0: SecurityRule(.tcp((1000 + r)...(1000 + r)), from: .cidr(IPv4Network(address: IPv4Address(UInt32(0xC633_6400 + r)), prefixLength: 32)!))
                case 1: SecurityRule(.udp(5000...5100), from: .cidr(IPv4Network("198.51.100.0/24")!))
                case 2: SecurityRule(.icmp(type: 8, code: nil), from: .group(ids[(index + r) % ids.count]))
                default: SecurityRule(.tcp(22...22), from: .group(ids[(index + 1) % ids.count]))
                }
            }
            try allocator.setRules(of: id, to: rules)
        }
        for i in 0..<instances {
            try allocator.runInstance(InstanceID(number: UInt32(i + 1)), on: "node\(i % nodes)", group: ids[i % ids.count])
        }
        for i in 0..<publicIPs {
            let address = try allocator.allocatePublicIP()
            try allocator.associate(address, with: InstanceID(number: UInt32(i + 1)))
        }
        return allocator.state
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Peak resident set size of this process (getrusage reports KiB on Linux).
func peakResidentMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}
