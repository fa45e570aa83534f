import ArgumentParser
import CSpawn
import Foundation
import VNetBus
import VNetSystem
import VNetCore
import VNetLinux
import VNetProto
import ZMQ

/// `vnet-bench bringup`: a front end and N nodes in network namespaces (the real coordinator and agents with
/// the Linux backend, ISC dhcpd, real dhclients), MANAGED-NOVLAN. From nothing (agents up, no instance) it
/// runs every instance at once and measures
///   - to applied: until every agent reports the change applied;
///   - to reachable: until every instance, configured by DHCP, answers ping from the front end (the dhclients
///     start once the change is applied everywhere, as the cluster controller has the network ready before a
///     VM boots);
/// and, as the baseline in the same run, the same instances brought up one at a time, each waited for
/// (what a per-instance call and wait, Eucalyptus' way, costs).
///
/// Contained: every namespace is `vnb-*`, made and removed here; addresses are 10.99.0.0/24 and 10.20.0.0/16
/// on this benchmark's own switch. Needs root.
struct BringUpBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bringup", abstract: "Measure cluster bring-up in namespaces (root).")

    @Option(help: "Nodes besides the front end.") var nodes = 4
    @Option(help: "Instances per node.") var instances = 50
    @Option(help: "Security groups the instances are spread over.") var groups = 5
    @Flag(help: "Skip the one-at-a-time baseline.") var noBaseline = false
    @Flag(name: .customLong("no-omapi"), help: "Agents with --dhcpd-omapi-port 0: dhcpd restarted on every change, as before issue 16 (to compare).")
    var noOMAPI = false
    @Flag(name: .customLong("keep-logs"), help: "Keep the daemons' logs (the directory is printed).") var keepLogs = false
    @Flag(help: "Print one JSON object.") var json = false

    struct Figures: Encodable {
        var nodes: Int, instances: Int, groups: Int
        var setupSeconds: Double
        var toAppliedSeconds: Double
        var toReachableSeconds: Double
        var dhcpP50Seconds: Double, dhcpP99Seconds: Double
        var frontEndApplies: Int
        var baselineToAppliedSeconds: Double?
    }

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("bringup needs root (network namespaces)") }
        guard (1...32).contains(nodes), (1...250).contains(instances), (1...50).contains(groups) else {
            throw ValidationError("--nodes 1-32, --instances 1-250, --groups 1-50")
        }
        for tool in ["/usr/sbin/dhcpd", "/usr/sbin/dhclient", "/usr/sbin/ip"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw ValidationError("\(tool) is missing (deploy/install-deps.sh installs it)")
        }
    }

    func run() throws {
        let lab = try BringUpLab(nodes: nodes, instancesPerNode: instances, agentArguments: noOMAPI ? ["--dhcpd-omapi-port", "0"] : [])
        defer {
            lab.tearDown(keepLogs: keepLogs)
            if keepLogs { FileHandle.standardError.write(Data("bringup: logs kept in \(lab.directory)\n".utf8)) }
        }
        progress("setting up \(nodes + 1) hosts and \(nodes * instances) instance namespaces")
        let setupStart = monotonicSeconds()
        try lab.build()
        let setup = monotonicSeconds() - setupStart
        try lab.startDaemons()
        progress("cluster up; running \(nodes * instances) instances")

        let run = try lab.bringUp(groups: groups, prefix: 0xb000_0000)
        var figures = Figures(nodes: nodes, instances: nodes * instances, groups: groups, setupSeconds: setup,
                              toAppliedSeconds: run.toApplied, toReachableSeconds: run.toReachable,
                              dhcpP50Seconds: percentile(run.dhcp, 0.5), dhcpP99Seconds: percentile(run.dhcp, 0.99),
                              frontEndApplies: lab.applies(of: "fe"))
        if !noBaseline {
            progress("baseline: terminating, then the same instances one at a time, each waited for")
            try lab.terminateAll()
            figures.baselineToAppliedSeconds = try lab.oneAtATime(groups: groups)
        }
        if json { try printJSON(figures); return }
        var rows = [["MEASUREMENT", "VALUE", "TARGET", "", "DETAIL"]]
        rows.append(["setup (namespaces, vifs; not counted)", String(format: "%.2f s", setup), "-", "", "\(nodes + 1) hosts, \(nodes * instances) instance namespaces"])
        rows.append(["to every agent applied", String(format: "%.2f s", run.toApplied), "< 2 s", run.toApplied < 2 ? "ok" : "MISSES",
                     "\(nodes * instances) run-instance requests, \(groups) groups; front end applied \(figures.frontEndApplies) times"])
        rows.append(["to every instance DHCP'd and answering ping", String(format: "%.2f s", run.toReachable), "< 10 s", run.toReachable < 10 ? "ok" : "MISSES",
                     String(format: "per instance, dhclient start to bound: p50 %.2f s, p99 %.2f s", figures.dhcpP50Seconds, figures.dhcpP99Seconds)])
        if let baseline = figures.baselineToAppliedSeconds {
            rows.append(["baseline: one at a time, each waited for", String(format: "%.2f s", baseline), "baseline", "",
                         String(format: "batched bring-up %.1fx faster to applied", baseline / run.toApplied)])
        }
        print(table(rows), terminator: "")
    }

    func progress(_ line: String) {
        if !json { FileHandle.standardError.write(Data("bringup: \(line)\n".utf8)) }
    }
}

/// The namespaces, daemons and instances of one bring-up run.
final class BringUpLab {
    let nodeNames: [String]
    let instancesPerNode: Int
    let directory: String
    let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var daemons: [Process] = []
    var client: RequestClient?
    var dhclients: [pid_t] = []
    /// Instance id → (namespace, vif on the node, interface in the instance, node).
    var instances: [(id: InstanceID, namespace: String, vif: String, interface: String, node: String)] = []

    static let prefix = "vnb-"

    /// Added to every agent's command line, and to the coordinator's.
    let agentArguments: [String]
    var coordinatorArguments: [String] = []

    init(nodes: Int, instancesPerNode: Int, agentArguments: [String] = []) throws {
        nodeNames = (1...nodes).map { "n\($0)" }
        self.instancesPerNode = instancesPerNode
        self.agentArguments = agentArguments
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-bringup-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        Namespaces.remove(prefix: Self.prefix)
    }

    func ns(_ name: String) -> String { Self.prefix + name }

    func build() throws {
        let hosts = ["fe"] + nodeNames
        try Namespaces.batch(nil, (["sw"] + hosts).map { "netns add \(ns($0))" })
        try Namespaces.batch(ns("sw"), ["link add sw type bridge", "link set sw up"]
                  + hosts.flatMap { ["link add p-\($0) type veth peer name eth0 netns \(ns($0))", "link set p-\($0) master sw", "link set p-\($0) up"] })
        try Namespaces.batch(ns("fe"), ["link set lo up", "link set eth0 up", "address add 10.99.0.1/24 dev eth0"])
        for (index, node) in nodeNames.enumerated() {
            try Namespaces.batch(ns(node), ["link set lo up", "link add br0 type bridge", "link set eth0 master br0", "link set eth0 up",
                                 "link set br0 up", "address add 10.99.0.\(11 + index)/24 dev br0"])
        }
        // Instances: a namespace each, a veth whose node end is the hypervisor's vif.
        var serial: UInt32 = 0
        for node in nodeNames {
            var nodeLines: [String] = []
            var namespaces: [String] = []
            for _ in 0..<instancesPerNode {
                serial += 1
                let id = InstanceID(String(format: "i-b%07x", serial))!
                let hex = id.hexDigits
                let entry = (id: id, namespace: ns("i" + hex), vif: "vm" + hex, interface: "ve" + hex, node: node)
                instances.append(entry)
                namespaces.append(entry.namespace)
                nodeLines += ["link add \(entry.vif) type veth peer name \(entry.interface)", "link set \(entry.vif) up",
                              "link set \(entry.interface) address \(MACPrefix.eucalyptusDefault.mac(for: id))",
                              "link set \(entry.interface) netns \(entry.namespace)"]
            }
            try Namespaces.batch(nil, namespaces.map { "netns add \($0)" })
            try Namespaces.batch(ns(node), nodeLines)
        }
        for entry in instances { try Namespaces.batch(entry.namespace, ["link set lo up", "link set \(entry.interface) up"]) }
        try BenchConfigs.writeNoVLAN(in: directory, addressesPerNetwork: 256)
        // dhclient's script: the address and route, then a marker file the benchmark watches.
        try """
            #!/bin/sh
            case "$reason" in BOUND|REBOOT|RENEW|REBIND)
              ip address add "$new_ip_address/$new_subnet_mask" dev "$interface"
              ip route replace default via "$new_routers" dev "$interface"
              echo "$new_ip_address" > "$VNB_MARK.tmp" && mv "$VNB_MARK.tmp" "$VNB_MARK";;
            esac

            """.write(toFile: "\(directory)/dhclient-script", atomically: true, encoding: .utf8)
        chmod("\(directory)/dhclient-script", 0o755)
    }

    func launch(_ namespace: String, _ name: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace] + arguments
        FileManager.default.createFile(atPath: "\(directory)/\(name).log", contents: nil)
        let log = FileHandle(forWritingAtPath: "\(directory)/\(name).log")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        daemons.append(process)
    }

    func startDaemons() throws {
        let bin = binaries.path
        try launch(ns("fe"), "coordinator", ["\(bin)/vnet-coordinator", "--config", "\(directory)/fe.conf", "--state-dir", "\(directory)/coordinator",
                                             "--listen", "10.99.0.1:7460", "--insecure", "--frontend", "fe"] + coordinatorArguments)
        let endpointsFile = "\(directory)/coordinator/\(BusEndpoints.fileName)"
        let started = monotonicSeconds()
        while !FileManager.default.fileExists(atPath: endpointsFile) {
            guard monotonicSeconds() - started < 15 else { throw BusError("the coordinator did not start; logs in \(directory)") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let agent = { (host: String, role: String, config: String) in
            ["\(bin)/vnet-agent", "--role", role, "--config", config, "--coordinator", "10.99.0.1:7460", "--node-id", host,
             "--state-dir", "\(self.directory)/agent-\(host)", "--insecure", "--backend", "linux"] + self.agentArguments
        }
        try launch(ns("fe"), "agent-fe", agent("fe", "frontend", "\(directory)/fe.conf"))
        for node in nodeNames { try launch(ns(node), "agent-\(node)", agent(node, "node", "\(directory)/node.conf")) }
        // The benchmark talks to the coordinator from the front end's namespace, as vnetctl there would: this
        // thread moves into it (so do ZeroMQ's I/O threads, started after) and the machine's own network is
        // never involved.
        let entered = vnet_enter_network_namespace("/var/run/netns/\(ns("fe"))")
        guard entered == 0 else { throw BusError("cannot enter \(ns("fe")): \(String(cString: strerror(entered)))") }
        client = try RequestClient(context: ZMQContext(), endpoint: BusEndpoints(hostAndBasePort: "10.99.0.1:7460").control, security: .insecure,
                                   codec: EnvelopeCodec(clusterID: "vnet"))
        let deadline = monotonicSeconds() + 20
        while monotonicSeconds() < deadline {
            if let nodes = try? call(.listNodes(Vnet_V1_ListNodes())).nodes, nodes.filter({ HostLiveness(rawValue: $0.state) == .up }).count == nodeNames.count + 1 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw BusError("not every agent came up; logs in \(directory)")
    }

    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op, timeout: Double = 10) throws -> Vnet_V1_ControlReply {
        var request = Vnet_V1_ControlRequest()
        request.op = op
        let reply = try client!.call(request, timeout: timeout)
        guard reply.ok else { throw BusError("refused: \(reply.error)") }
        return reply
    }

    func runInstance(_ entry: (id: InstanceID, namespace: String, vif: String, interface: String, node: String), group: Int) throws -> UInt64 {
        var run = Vnet_V1_RunInstance()
        run.instanceID = entry.id.description
        run.node = entry.node
        run.group = "g\(group)"
        run.vif = entry.vif
        return try call(.runInstance(run)).revision
    }

    /// Polls until every host has applied its desired state as of cluster `revision` (a host's desired revision
    /// is the last one that changed it, so: applied up to its desired revision).
    func waitApplied(_ revision: UInt64, timeout: Double = 60) throws {
        let deadline = monotonicSeconds() + timeout
        while true {
            let nodes = try call(.listNodes(Vnet_V1_ListNodes())).nodes
            if nodes.count == nodeNames.count + 1, nodes.allSatisfy({ $0.appliedRevision >= $0.desiredRevision && $0.desiredRevision <= revision }) { return }
            guard monotonicSeconds() < deadline else { throw BusError("revision \(revision) not applied everywhere in \(timeout) s; logs in \(directory)") }
            Thread.sleep(forTimeInterval: 0.002)
        }
    }

    struct Run { var toApplied: Double; var toReachable: Double; var dhcp: [Double] }

    func bringUp(groups: Int, prefix: UInt32) throws -> Run {
        for group in 0..<groups {
            var ref = Vnet_V1_GroupRef()
            ref.group = "g\(group)"
            _ = try call(.createGroup(ref))
        }
        let start = monotonicSeconds()
        var revision: UInt64 = 0
        for (index, entry) in instances.enumerated() { revision = try runInstance(entry, group: index % groups) }
        try waitApplied(revision)
        let toApplied = monotonicSeconds() - start
        // Every host has its part (vifs on bridges, dhcpd knowing every MAC): the VMs boot and ask for addresses.
        var dhcpStarted: [InstanceID: Double] = [:]
        for entry in instances {
            dhcpStarted[entry.id] = monotonicSeconds()
            dhclients.append(try ProcessRunner(prefix: ["ip", "netns", "exec", entry.namespace]).start(
                ["dhclient", "-4", "-1", "-sf", "\(directory)/dhclient-script", "-e", "VNB_MARK=\(directory)/\(entry.id).bound",
                 "-pf", "\(directory)/dhclient-\(entry.id).pid", "-lf", "\(directory)/dhclient-\(entry.id).leases", entry.interface]))
        }
        // Every instance bound, then answering ping from the front end.
        var bound: [InstanceID: IPv4Address] = [:]
        var dhcp: [Double] = []
        let pinger = try ICMPPinger()
        var answered: Set<IPv4Address> = []
        let deadline = monotonicSeconds() + 60
        while answered.count < instances.count {
            guard monotonicSeconds() < deadline else {
                throw BusError("after 60 s: \(bound.count) of \(instances.count) bound, \(answered.count) answered; logs in \(directory)")
            }
            for entry in instances where bound[entry.id] == nil {
                if let text = try? String(contentsOfFile: "\(directory)/\(entry.id).bound", encoding: .utf8),
                   let address = IPv4Address(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    bound[entry.id] = address
                    if let started = dhcpStarted[entry.id] { dhcp.append(monotonicSeconds() - started) }
                }
            }
            answered.formUnion(pinger.ping(Array(Set(bound.values).subtracting(answered)), waitSeconds: 0.05))
            while waitpid(-1, nil, WNOHANG) > 0 {}  // dhclients that bound and went to the background
        }
        return Run(toApplied: toApplied, toReachable: monotonicSeconds() - start, dhcp: dhcp.sorted())
    }

    /// How many times a host's agent applied a change (from its log).
    func applies(of host: String) -> Int {
        let log = (try? String(contentsOfFile: "\(directory)/agent-\(host).log", encoding: .utf8)) ?? ""
        return log.split(separator: "\n").count { $0.contains(": applied ") }
    }

    func terminateAll() throws {
        var revision: UInt64 = 0
        for entry in instances {
            var ref = Vnet_V1_InstanceRef()
            ref.instanceID = entry.id.description
            revision = try call(.terminateInstance(ref)).revision
        }
        try waitApplied(revision)
    }

    /// The baseline: each instance run and waited for before the next.
    func oneAtATime(groups: Int) throws -> Double {
        let start = monotonicSeconds()
        for (index, entry) in instances.enumerated() {
            let revision = try runInstance(entry, group: index % groups)
            try waitApplied(revision)
        }
        return monotonicSeconds() - start
    }

    func tearDown(keepLogs: Bool) {
        for pid in dhclients { kill(pid, SIGTERM) }
        for process in daemons where process.isRunning { process.terminate(); process.waitUntilExit() }
        Namespaces.remove(prefix: Self.prefix)  // takes dhcpd and the dhclients in the background with it
        if !keepLogs { try? FileManager.default.removeItem(atPath: directory) }
    }
}
