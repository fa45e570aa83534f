import Foundation
@testable import VNetCore
import VNetLinux

/// A small cluster on real kernel objects, for the namespace lane: a switch namespace joins a front end, the
/// nodes and an "outside" host; nodes have `br0` over their eth0; instances are namespaces whose eth0 is the
/// peer of a veth on a node (the hypervisor's vif). The control plane uses a management network (10.99.0.0/24)
/// that exists only on this switch; the outside is 203.0.113.100 (documentation range).
final class NamespaceCluster {
    let switchNS: ScratchNamespace, frontEnd: ScratchNamespace, outside: ScratchNamespace
    var nodes: [String: ScratchNamespace] = [:]
    var instances: [String: ScratchNamespace] = [:]
    let directory: String
    var processes: [Process] = []
    /// Given to every agent started (`--reconcile-interval 0`: no repair, which would race a test's look).
    var agentArguments: [String] = []
    /// Given to the coordinator besides its usual flags.
    var coordinatorArguments: [String] = []
    var coordinator: Process?
    /// Where agents and vnetctl find the coordinators (a list when several share a PostgreSQL store).
    var coordinators = "10.99.0.1:7460"

    func runner(_ namespace: ScratchNamespace) -> ProcessRunner { ProcessRunner(prefix: ["ip", "netns", "exec", namespace.name]) }
    func sh(_ namespace: ScratchNamespace, _ command: String) throws { _ = try runner(namespace).run(command.split(separator: " ").map(String.init), input: nil) }

    /// Builds the wire and the hosts; the configs default to MANAGED-NOVLAN (`NamespaceFixtures`), else
    /// `frontendConfig` and `nodeConfig` are written as `fe.conf` and `node.conf`.
    /// `nodeBridges: false` leaves the nodes' eth0 bare (MANAGED: the agent makes `eth0.<vlan>` and `eucabr<vlan>`).
    /// `managementPort: true` gives each node a second port, `mgmt0`, for the control plane, as a node with a
    /// management NIC has: its br0 (the instances' side) can then break without cutting the node off.
    init(nodeNames: [String], frontendConfig: String? = nil, nodeConfig: String? = nil, nodeBridges: Bool = true, managementPort: Bool = false) throws {
        switchNS = try ScratchNamespace()
        frontEnd = try ScratchNamespace()
        outside = try ScratchNamespace()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-novlan-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try sh(switchNS, "ip link add sw type bridge")
        try sh(switchNS, "ip link set sw up")
        func plug(_ namespace: ScratchNamespace, port: String, as device: String = "eth0") throws {
            try sh(switchNS, "ip link add \(port) type veth peer name \(device) netns \(namespace.name)")
            try sh(switchNS, "ip link set \(port) master sw")
            try sh(switchNS, "ip link set \(port) up")
            try sh(namespace, "ip link set lo up")
            try sh(namespace, "ip link set \(device) up")
        }
        try plug(frontEnd, port: "p-fe")
        // "The outside world": a host on the same wire with an address of the documentation range, routing
        // the cluster's public addresses to the front end (as an upstream router would).
        try plug(outside, port: "p-out")
        try sh(outside, "ip address add 203.0.113.100/24 dev eth0")
        try sh(outside, "ip route add 10.99.0.0/24 dev eth0")  // to answer the front end's own address
        // The front end's upstream: its public side reaches the outside host directly on the wire.
        try sh(frontEnd, "ip route add 203.0.113.96/28 dev eth0")
        try sh(frontEnd, "ip address add 10.99.0.1/24 dev eth0")
        // Forwarding is left off: the front end's agent turns it on itself.
        for (index, name) in nodeNames.enumerated() {
            let namespace = try ScratchNamespace()
            nodes[name] = namespace
            try plug(namespace, port: "p-\(name)")
            if nodeBridges {
                try sh(namespace, "ip link add br0 type bridge")
                try sh(namespace, "ip link set eth0 master br0")
                try sh(namespace, "ip link set br0 up")
            }
            if managementPort { try plug(namespace, port: "m-\(name)", as: "mgmt0") }
            try sh(namespace, "ip address add 10.99.0.\(11 + index)/24 dev \(managementPort ? "mgmt0" : nodeBridges ? "br0" : "eth0")")
        }
        try NamespaceFixtures.writeNoVLANConfigs(in: directory, publicIPs: "203.0.113.10-203.0.113.12")
        if let frontendConfig { try frontendConfig.write(toFile: "\(directory)/fe.conf", atomically: true, encoding: .utf8) }
        if let nodeConfig { try nodeConfig.write(toFile: "\(directory)/node.conf", atomically: true, encoding: .utf8) }
    }

    deinit {
        for process in processes where process.isRunning { process.terminate(); process.waitUntilExit() }
        // dhcpd and dhclient run detached; their namespaces go with ScratchNamespace, the processes here.
        for name in ["dhcpd", "dhclient"] {
            for pid in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where pid.hasSuffix(".pid") && pid.contains(name) {
                if let text = try? String(contentsOfFile: "\(directory)/\(pid)", encoding: .utf8), let number = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(number, SIGTERM) }
            }
        }
        if let pid = frontEndDhcpdPID { kill(pid, SIGTERM) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    func start(_ namespace: ScratchNamespace, _ name: String, _ program: String, _ arguments: [String]) throws {
        processes.append(try NamespaceFixtures.launch(program, arguments, in: namespace, log: "\(directory)/\(name).log"))
    }

    /// The coordinator on the front end (listening on the management network, no CURVE: the wire is the test's),
    /// the front end's agent, and one agent per node; returns once every one is UP.
    func startDaemons() throws {
        try startCoordinator()
        let listening = Date().addingTimeInterval(10)
        while Date() < listening, !log("coordinator").contains("; publish tcp://") { Thread.sleep(forTimeInterval: 0.05) }
        try startFrontendAgent()
        for name in nodes.keys.sorted() { try startNodeAgent(name) }
        let expected = nodes.count + 1
        // Under the VM lane's software emulation everything is several times slower (and on some machines of
        // this kind three times slower again: the agents' first applies there took half a minute).
        let deadline = Date().addingTimeInterval(VLANLane.inVM ? 150 : 15)
        // Judged on the listing that showed every host UP (asking again could catch one SUSPECT a moment later,
        // while its first apply holds its heartbeats).
        var listing = ""
        while Date() < deadline, listing.components(separatedBy: " UP ").count != expected + 1 {
            listing = (try? vnetctl(["nodes"])) ?? ""
            if listing.components(separatedBy: " UP ").count != expected + 1 { Thread.sleep(forTimeInterval: 0.1) }
        }
        guard listing.components(separatedBy: " UP ").count == expected + 1 else {
            throw ClusterNotUp(coordinatorLog: String(log("coordinator").suffix(1500)))
        }
        // Then until every host has applied its first state (a front end's first firewall apply can take seconds
        // under emulation, and a cluster operation started meanwhile finds it SUSPECT).
        struct Node: Decodable { var state: String; var desiredRevision: UInt64; var appliedRevision: UInt64 }
        while Date() < deadline {
            let nodes = (try? JSONDecoder().decode([Node].self, from: Data(((try? vnetctl(["nodes", "--json"])) ?? "").utf8))) ?? []
            if nodes.count == expected, nodes.allSatisfy({ $0.state == "UP" && $0.appliedRevision == $0.desiredRevision }) { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// The coordinator (again, after a kill: same state directory, log appended).
    func startCoordinator() throws {
        try start(frontEnd, "coordinator", "vnet-coordinator", ["--config", "\(directory)/fe.conf", "--state-dir", "\(directory)/coordinator",
                                                                "--listen", "10.99.0.1:7460", "--insecure", "--frontend", "fe"]
                  // Under emulation an apply holds an agent's heartbeats for seconds: don't call that DOWN.
                  + (VLANLane.inVM ? ["--suspect-after", "5", "--down-after", "10"] : []) + coordinatorArguments)
        coordinator = processes.last
    }

    /// SIGKILL, as a crash or the OOM killer would; returns once the process is gone.
    func kill9(_ process: Process?) {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// The running agent of `host` ("fe" or a node).
    func agent(_ host: String) -> Process? {
        processes.last { process in
            guard process.isRunning, let arguments = process.arguments, arguments.contains(where: { $0.hasSuffix("/vnet-agent") }),
                  let flag = arguments.firstIndex(of: "--node-id"), flag + 1 < arguments.count else { return false }
            return arguments[flag + 1] == host
        }
    }

    /// The front end's agent (again, after a kill).
    func startFrontendAgent() throws {
        try start(frontEnd, "fe-agent", "vnet-agent", ["--role", "frontend", "--config", "\(directory)/fe.conf", "--coordinator", coordinators,
                                                       "--node-id", "fe", "--state-dir", "\(directory)/fe-agent", "--insecure", "--backend", "linux"] + agentArguments)
    }

    /// A node's agent (again, after a kill: same state directory, log appended).
    func startNodeAgent(_ name: String) throws {
        try start(nodes[name]!, "\(name)-agent", "vnet-agent", ["--config", "\(directory)/node.conf", "--coordinator", coordinators,
                                                               "--node-id", name, "--state-dir", "\(directory)/\(name)-agent", "--insecure", "--backend", "linux"] + agentArguments)
    }

    /// vnetctl whatever its exit status: (status, stdout); stderr is appended to `vnetctl.log`.
    func vnetctlStatus(_ arguments: [String]) throws -> (Int32, String) {
        let result = try vnetctlResult(arguments)
        return (result.status, result.output)
    }

    /// vnetctl whatever its exit status, with what it said on stderr.
    func vnetctlResult(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        try Self.vnetctlResult(arguments, namespace: frontEnd.name, directory: directory, coordinators: coordinators)
    }

    /// The same from another thread (a test's request loop): only names, nothing of the cluster's objects.
    static func vnetctlResult(_ arguments: [String], namespace: String, directory: String, coordinators: String = "10.99.0.1:7460") throws -> (status: Int32, output: String, errors: String) {
        let (status, output, errors) = try result(of: [NamespaceFixtures.binaries.appendingPathComponent("vnetctl").path] + arguments
                                                  + ["--coordinator", coordinators, "--insecure"], in: namespace, directory: directory)
        if let log = FileHandle(forWritingAtPath: "\(directory)/vnetctl.log") ?? {
            FileManager.default.createFile(atPath: "\(directory)/vnetctl.log", contents: nil)
            return FileHandle(forWritingAtPath: "\(directory)/vnetctl.log")
        }() {
            log.seekToEndOfFile()
            log.write(Data("$ vnetctl \(arguments.joined(separator: " ")) -> \(status)\n\(errors)".utf8))
            try? log.close()
        }
        return (status, output, errors)
    }

    /// Any command in a namespace, whatever its exit status: (status, stdout, stderr). stderr goes through a
    /// file in `directory` (two pipes read one after the other could fill and block).
    static func result(of command: [String], in namespace: String, directory: String) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace] + command
        let output = Pipe()
        process.standardOutput = output
        let errorFile = "\(directory)/command-\(UUID().uuidString.prefix(8)).err"
        FileManager.default.createFile(atPath: errorFile, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorFile) }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorFile))
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self), (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? "")
    }

    /// A host's links by name, as the kernel reports them (ifindex, master, state...).
    func links(_ namespace: ScratchNamespace) throws -> [String: ObservedLink] {
        Dictionary(uniqueKeysWithValues: try LinkObservation.links(fromJSON: try runner(namespace).run(["ip", "-json", "-details", "link", "show"], input: nil))
            .map { ($0.name, $0) })
    }

    /// Stops the front end's dhcpd by hand, as an operator might (SIGTERM), and waits until it is gone.
    func stopFrontEndDhcpd() throws {
        guard let pid = frontEndDhcpdPID else { throw NoDhcpd() }
        kill(pid, SIGTERM)
        for _ in 0..<100 where DHCPDManager.isRunningDhcpd(pid) { Thread.sleep(forTimeInterval: 0.05) }
    }

    struct NoDhcpd: Error, CustomStringConvertible { var description: String { "the front end runs no dhcpd" } }

    /// The pid of the front end's dhcpd, from the pid file its agent gave it.
    var frontEndDhcpdPID: Int32? {
        (try? String(contentsOfFile: "\(directory)/fe-agent/dhcpd/dhcpd.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func vnetctl(_ arguments: [String]) throws -> String {
        String(decoding: try runner(frontEnd).run([NamespaceFixtures.binaries.appendingPathComponent("vnetctl").path] + arguments
                                                  + ["--coordinator", coordinators, "--insecure"], input: nil), as: UTF8.self)
    }

    /// An instance: a namespace whose eth0 is the peer of the hypervisor's vif `vm<hex>` on the node, with the
    /// MAC the managed modes derive from its id (`setMAC` changes it, as STATIC's pairs need).
    func makeInstance(_ id: InstanceID, on node: String) throws -> String {
        let namespace = try ScratchNamespace()
        instances[id.description] = namespace
        let vif = "vm" + id.hexDigits
        try sh(nodes[node]!, "ip link add \(vif) type veth peer name eth0 netns \(namespace.name)")
        try sh(nodes[node]!, "ip link set \(vif) up")
        try sh(namespace, "ip link set lo up")
        try sh(namespace, "ip link set eth0 address \(MACPrefix.eucalyptusDefault.mac(for: id))")
        try sh(namespace, "ip link set eth0 up")
        return vif
    }

    /// An instance made (`makeInstance`) and run on `node` in `group`, waiting until every affected host applied it.
    func launchInstance(_ id: InstanceID, on node: String, group: String) throws {
        let vif = try makeInstance(id, on: node)
        // Under the VM lane's software emulation everything is several times slower.
        _ = try vnetctl(["run-instance", "--id", id.description, "--node", node, "--group", group, "--vif", vif, "--wait", "--wait-timeout", VLANLane.inVM ? "30" : "10"])
    }

    /// Pings from an instance in the background, `count` at `interval`; `finish` waits and returns ping's summary.
    func startPings(from id: InstanceID, to address: String, count: Int, interval: String = "0.1") throws -> (finish: () -> String, process: Process) {
        let pinger = Process()
        pinger.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        pinger.arguments = ["netns", "exec", instances[id.description]!.name, "ping", "-n", "-q", "-c", String(count), "-i", interval, "-W", "1", address]
        let output = Pipe()
        pinger.standardOutput = output
        try pinger.run()
        return ({
            let summary = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            pinger.waitUntilExit()
            return summary
        }, pinger)
    }

    /// Gives the instance's eth0 another MAC (STATIC: the VNET_MACMAP pair the coordinator chose).
    func setMAC(_ id: InstanceID, _ mac: MACAddress) throws {
        let namespace = instances[id.description]!
        try sh(namespace, "ip link set eth0 down")
        try sh(namespace, "ip link set eth0 address \(mac)")
        try sh(namespace, "ip link set eth0 up")
    }

    /// dhclient in the instance; its script sets the address and the default route it was given.
    func dhcp(_ id: InstanceID) throws -> String {
        let script = "\(directory)/dhclient-script"
        if !FileManager.default.fileExists(atPath: script) {
            try """
            #!/bin/sh
            case "$reason" in BOUND|REBOOT|RENEW|REBIND)
              ip address add "$new_ip_address/$new_subnet_mask" dev "$interface"
              ip route replace default via "$new_routers" dev "$interface"
              echo "$new_ip_address" > "\(directory)/$interface-$new_ip_address.bound";;
            esac

            """.write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
        }
        let namespace = instances[id.description]!
        _ = try runner(namespace).run(["timeout", "30", "dhclient", "-4", "-1", "-sf", script, "-pf", "\(directory)/dhclient-\(id).pid",
                                       "-lf", "\(directory)/dhclient-\(id).leases", "eth0"], input: nil)
        let addresses = try LinkObservation.addresses(fromJSON: try runner(namespace).run(["ip", "-json", "address", "show", "dev", "eth0"], input: nil))
        return addresses.first?.address.description ?? ""
    }

    func ping(from id: InstanceID, _ address: String) -> Bool {
        (try? runner(instances[id.description]!).run(["ping", "-c", "1", "-W", "1", address], input: nil)) != nil
    }

    func log(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "" }

    /// Pings from `namespace`: count sent, count received.
    func pingCount(_ namespace: ScratchNamespace, _ address: String, count: Int, interval: String = "0.2") -> (Int, Int) {
        let output = (try? runner(namespace).run(["ping", "-n", "-q", "-c", String(count), "-i", interval, "-W", "1", address], input: nil))
            ?? []
        let text = String(decoding: output, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.contains("packets transmitted") }) else { return (count, 0) }
        let numbers = line.split(separator: " ").compactMap { Int($0) }
        return numbers.count >= 2 ? (numbers[0], numbers[1]) : (count, 0)
    }
}

struct ClusterNotUp: Error, CustomStringConvertible {
    var coordinatorLog: String
    var description: String { "not every agent came up; the coordinator's log ends:\n\(coordinatorLog)" }
}
