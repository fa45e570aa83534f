import Foundation
import Testing
import VNetBus
import VNetProto
import ZMQ

/// Real coordinator and agent processes on 127.0.0.1, with CURVE keys, in a temporary directory. Everything
/// it starts is killed when it is released, also when a test fails.
final class ClusterHarness {
    static let binaries: URL = {
        for directory in [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(), Bundle.main.bundleURL.deletingLastPathComponent()] {
            if FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("vnet-coordinator").path) { return directory }
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug")
    }()

    let directory: String
    let keys: String
    let heartbeat: Double
    let frontendConfig: String
    let nodeConfig: String
    var coordinator: Process?
    var agents: [String: Process] = [:]
    /// Anything else a test started against this cluster (a gateway): killed with it.
    var extraProcesses: [Process] = []
    let context = ZMQContext()

    init(heartbeat: Double = 1.0, addressesPerNetwork: Int = 64) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-cluster-\(UUID().uuidString.prefix(8))").path
        keys = "\(directory)/keys"
        self.heartbeat = heartbeat
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        frontendConfig = "\(directory)/frontend.conf"
        nodeConfig = "\(directory)/node.conf"
        try """
        VNET_MODE="MANAGED"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="10.20.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="192.0.2.53"
        VNET_ADDRSPERNET="\(addressesPerNetwork)"
        VNET_PUBLICIPS="203.0.113.10-203.0.113.60"

        """.write(toFile: frontendConfig, atomically: true, encoding: .utf8)
        try "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\n".write(toFile: nodeConfig, atomically: true, encoding: .utf8)
        try CurveKeys.generate(in: keys, name: "coordinator")
        try CurveKeys.generate(in: "\(keys)/admins", name: "tester")
    }

    deinit {
        for process in agents.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in extraProcesses where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        if let coordinator, coordinator.isRunning { kill(coordinator.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    func launch(_ name: String, _ arguments: [String], log: String) throws -> Process {
        let process = Process()
        process.executableURL = Self.binaries.appendingPathComponent(name)
        process.arguments = arguments
        // Appended to across restarts: a daemon started again adds to its log, and waits count its lines.
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    var endpointsFile: String { "\(directory)/coordinator/\(BusEndpoints.fileName)" }

    /// The coordinator on ports it picks (port 0); started again, it takes the same ones (from its endpoints
    /// file), as agents holding that file need. Returns once it logged where it listens.
    func startCoordinator(extra: [String] = []) throws {
        let started = log("coordinator").components(separatedBy: "; publish tcp://").count
        coordinator = try launch("vnet-coordinator", [
            "--config", frontendConfig, "--state-dir", "\(directory)/coordinator", "--listen", "127.0.0.1:0",
            "--keys", keys, "--frontend", "fe", "--heartbeat-interval", String(heartbeat),
        ] + extra, log: "\(directory)/coordinator.log")
        try waitUntil(timeout: 10, "the coordinator says where it listens") {
            self.log("coordinator").components(separatedBy: "; publish tcp://").count > started && FileManager.default.fileExists(atPath: self.endpointsFile)
        }
    }

    /// The address a daemon started with `--metrics 127.0.0.1:0` serves on, from its log line.
    func metricsAddress(_ logName: String) throws -> String {
        var address: String?
        try waitUntil(timeout: 10, "\(logName) says where its metrics are") {
            let text = self.log(logName).replacingOccurrences(of: "\\/", with: "/")
            guard let range = text.range(of: "metrics on http://") else { return false }
            address = String(text[range.upperBound...].prefix { $0 != "/" })
            return address?.isEmpty == false
        }
        return address!
    }

    func nodeKey(_ name: String) throws -> String {
        let path = "\(keys)/nodes/\(name).key"
        if !FileManager.default.fileExists(atPath: path) { try CurveKeys.generate(in: "\(keys)/nodes", name: name) }
        return path
    }

    /// The front end's own agent (node id "fe", the front end's config), as a real deployment runs it.
    func startFrontendAgent(extra: [String] = []) throws {
        try startAgent("fe", config: frontendConfig, role: "frontend", extra: extra)
    }

    func startAgent(_ name: String, key: String? = nil, config: String? = nil, role: String = "node", extra: [String] = []) throws {
        agents[name] = try launch("vnet-agent", [
            "--role", role, "--config", config ?? nodeConfig, "--endpoints", endpointsFile, "--node-id", name, "--state-dir", "\(directory)/agents/\(name)",
            "--key", try key ?? nodeKey(name), "--coordinator-key", "\(keys)/coordinator.pub", "--heartbeat-interval", String(heartbeat),
            "--backend", "recording",
        ] + extra, log: "\(directory)/agent-\(name).log")
    }

    func kill9(_ process: Process?) {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func appliesLogged(by node: String) -> Int {
        let text = (try? String(contentsOfFile: "\(directory)/agents/\(node)/applies.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").count
    }

    func adminSecurity() throws -> SocketSecurity {
        .curveClient(keys: try CurveKeys.readPair(secretKeyFile: "\(keys)/admins/tester.key"),
                     serverPublicKey: try CurveKeys.readKey("\(keys)/coordinator.pub"))
    }

    /// One control request with the admin key, as vnetctl makes it.
    func control(_ op: Vnet_V1_ControlRequest.OneOf_Op, timeout: Double = 5) throws -> Vnet_V1_ControlReply {
        let client = try RequestClient(context: context, endpoint: try BusEndpoints.load(from: endpointsFile).control,
                                       security: try adminSecurity(), codec: EnvelopeCodec(clusterID: "vnet"))
        var request = Vnet_V1_ControlRequest()
        request.op = op
        return try client.call(request, timeout: timeout)
    }

    func nodes() throws -> [String: Vnet_V1_NodeInfo] {
        Dictionary(uniqueKeysWithValues: try control(.listNodes(Vnet_V1_ListNodes())).nodes.map { ($0.nodeID, $0) })
    }

    func log(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "" }

    /// `logs`: what the issue shows on a timeout (default: the coordinator's log tail).
    func waitUntil(timeout: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation, logs: (() -> String)? = nil,
                   _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? condition()) == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let shown = logs?() ?? "--- coordinator log ---\n\(log("coordinator").suffix(3000))"
        Issue.record("timed out after \(timeout) s waiting until \(what)\n\(shown)", sourceLocation: sourceLocation)
        throw HarnessTimeout()
    }

    struct HarnessTimeout: Error {}
}

func runInstance(_ id: String, node: String, group: String = "", publicIP: String = "") -> Vnet_V1_ControlRequest.OneOf_Op {
    var run = Vnet_V1_RunInstance()
    run.instanceID = id; run.node = node; run.group = group; run.publicIp = publicIP
    return .runInstance(run)
}
