import ArgumentParser
import Foundation
import VNetAgent
import VNetBus
import VNetCore
import VNetHost
import VNetLinux
import VNetTestSupport

/// `vnet-agent`: a host's side. Flags and wiring only. `vnet-agent [run] --config ...` is the daemon;
/// `vnet-agent probe` runs one host's side of a VLAN check by hand; `vnet-agent diagnose` looks at this host alone.
struct AgentMain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnet-agent",
        abstract: "vnet's host agent.",
        subcommands: [AgentCommand.self, ProbeCommand.self, DiagnoseCommand.self],
        defaultSubcommand: AgentCommand.self)
}

struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Apply this host's desired network state from the coordinator, and report back (the default).")

    @Option(help: "This host's eucalyptus.conf.") var config: String
    @Option(help: "The coordinator as HOST:PORT (PORT updates, PORT+1 sync); several, comma-separated, when they share a PostgreSQL store (the agent follows the leader). Default: VNET_BUS_COORDINATOR.") var coordinator: String?
    @Option(help: "Or the coordinator's endpoints.json (several, comma-separated).") var endpoints: String?
    @Option(name: .customLong("node-id"), help: "This host's name in the cluster (the front end's: the coordinator's --frontend).") var nodeID: String
    @Option(name: .customLong("state-dir"), help: "Where the applied revision is remembered.") var stateDir: String
    @Option(help: "This agent's secret key file (nodes/NODE.key).") var key: String?
    @Option(name: .customLong("coordinator-key"), help: "The coordinator's public key file (coordinator.pub).") var coordinatorKey: String?
    @Flag(help: "Plain text, no CURVE. Development only.") var insecure = false
    @Option(help: "Role of this host's config: node or frontend.") var role = "node"
    @Option(help: "How to apply: linux (the default: links and addresses with iproute2, iptables, dhcpd; needs root), or recording (changes nothing on the host: logs applies to STATE_DIR/applies.log, for trying the bus out).")
    var backend = "linux"
    @Option(name: .customLong("reconcile-interval"), help: "Seconds between re-applying the held state to repair drift; a dead dhcpd is started again within a heartbeat (0: never repair).")
    var reconcileInterval = 10.0
    @Option(name: .customLong("iptables-preload"), help: "The operator's rules, saved with iptables-save, loaded with vnet's on the front end when first seen and when changed (default: $EUCALYPTUS/var/run/eucalyptus/net/iptables-preload, EUCALYPTUS from the config).")
    var iptablesPreload: String?
    @Option(name: .customLong("dhcpd-omapi-port"), help: "The port of dhcpd's OMAPI on the front end (dhcpd listens on every address; the agent connects to 127.0.0.1 and signs with its own key, STATE_DIR/dhcpd/omapi.key). Instances then come and go without restarting dhcpd. 0: no OMAPI, every change restarts dhcpd.")
    var dhcpdOmapiPort: UInt16 = 7911
    @Option(name: .customLong("cluster-id")) var clusterID = "vnet"
    @Option(name: .customLong("heartbeat-interval")) var heartbeatInterval = 1.0
    @Option(help: "Serve Prometheus metrics at http://ADDRESS/metrics, ADDRESS being IPV4:PORT (e.g. 127.0.0.1:9641). Default: off.")
    var metrics: String?
    @Option(name: .customLong("log-format"), help: "Log lines as text or json (one object per line).") var logFormat: Log.Format = .text

    func validate() throws {
        if insecure == (key != nil) { throw ValidationError("give exactly one of --key FILE (with --coordinator-key) and --insecure") }
        if key != nil, coordinatorKey == nil { throw ValidationError("--key needs --coordinator-key") }
        if (coordinator == nil) == (endpoints == nil), coordinator != nil { throw ValidationError("give --coordinator or --endpoints, not both") }
        guard ["node", "frontend"].contains(role) else { throw ValidationError("--role is node or frontend") }
        guard ["recording", "linux"].contains(backend) else { throw ValidationError("--backend is linux or recording") }
    }

    func run() throws {
        Log.sink.format = logFormat
        guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { throw ValidationError("cannot read \(config)") }
        let check = ConfigValidator.validate(text: text, role: role == "node" ? .node : .frontend)
        guard let vnetConfig = check.config else {
            let lines = check.diagnostics.errors.map { $0.formatted(file: config) }.joined(separator: "\n")
            FileHandle.standardError.write(Data("vnet-agent: \(config) is not a valid \(role) config:\n\(lines)\n".utf8))
            throw ExitCode.failure
        }
        do {
            let bus: [BusEndpoints]
            if let endpoints { bus = try BusEndpoints.list(endpoints).map { path throws(BusError) in try BusEndpoints.load(from: path) } }
            else if let address = coordinator ?? check.busCoordinator { bus = try BusEndpoints.list(address).map { text throws(BusError) in try BusEndpoints(hostAndBasePort: text) } }
            else { throw BusError("where is the coordinator? give --coordinator HOST:PORT, --endpoints FILE or VNET_BUS_COORDINATOR") }
            var options = AgentOptions(nodeID: nodeID, coordinators: bus, stateDirectory: stateDir)
            options.clusterID = clusterID
            options.heartbeatInterval = heartbeatInterval
            options.interface = vnetConfig.privateInterface ?? "eth0"
            options.bridge = vnetConfig.bridge ?? "br0"
            if let key, let coordinatorKey {
                options.keys = try CurveKeys.readPair(secretKeyFile: key)
                options.coordinatorPublicKey = try CurveKeys.readKey(coordinatorKey)
            } else {
                FileHandle.standardError.write(Data("vnet-agent: WARNING: --insecure: no CURVE\n".utf8))
            }
            options.reconcileInterval = reconcileInterval
            options.mode = vnetConfig.mode
            options.role = role == "node" ? .node : .frontend
            options.metrics = metrics != nil
            let hostBackend: HostBackend
            if backend == "linux" {
                var dhcpd = DHCPDManager.Settings(directory: "\(stateDir)/dhcpd")
                if let daemon = vnetConfig.dhcpDaemon { dhcpd.daemon = daemon }
                dhcpd.user = vnetConfig.dhcpUser
                dhcpd.omapiPort = dhcpdOmapiPort == 0 ? nil : dhcpdOmapiPort
                let home = ConfFile.parse(text).last("EUCALYPTUS")?.value
                let preload = iptablesPreload ?? home.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/var/run/eucalyptus/net/iptables-preload" }
                options.prober = LinuxVLANProber()
                do { options.neighbors = try LLDPListener(interface: options.interface) } catch {
                    // Not fatal: the switch port is only for reports (no CAP_NET_RAW, or no such interface yet).
                    FileHandle.standardError.write(Data("vnet-agent: not listening for LLDP: \(error)\n".utf8))
                }
                hostBackend = LinuxBackend(stateFile: "\(stateDir)/linux-backend.pb",
                                           dhcpd: DHCPDManager(runner: ProcessRunner(), settings: dhcpd), preloadPath: preload,
                                           interface: options.interface, bridge: options.bridge)
            } else {
                FileHandle.standardError.write(Data("vnet-agent: WARNING: --backend recording: NOTHING is applied to this host (no links, addresses, iptables or dhcpd); the coordinator will show it applied. For trying the bus out only.\n".utf8))
                hostBackend = RecordingBackend(logPath: "\(stateDir)/applies.log")
            }
            let agent = try Agent(options: options, backend: hostBackend)
            let server = try metrics.map { try MetricsServer(listen: $0, registry: agent.metrics) }
            server?.start()
            let log = Log.logger("agent", metadata: ["node": "\(nodeID)"])
            if let server { log.info("metrics on http://\(server.address)/metrics") }
            agent.stopFlag.stopOnTerminationSignals()
            agent.run()
            server?.stop()
            log.info("stopped; the host keeps its network as it is")
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("vnet-agent: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

AgentMain.main()

extension Log.Format: ExpressibleByArgument {}

/// `--json` output of the subcommands: one object, keys sorted.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
}
