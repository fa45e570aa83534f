import ArgumentParser
import Foundation
import VNetBus
import VNetCore
import VNetCoordinator
import VNetPostgres
import VNetStore

/// `vnet-coordinator`: the cluster controller's network side. Flags and wiring only.
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnet-coordinator",
        abstract: "Hold the cluster's desired network state and publish it to the node agents.")

    @Option(help: "The front end's eucalyptus.conf.") var config: String
    @Option(name: .customLong("state-dir"), help: "Where endpoints.json lives, and the allocations (cluster.sqlite) unless --store says otherwise.") var stateDir: String
    @Option(help: "Where the allocations are: 'sqlite' (STATE_DIR/cluster.sqlite, one coordinator), or postgresql://USER@HOST[:PORT]/DB, shared by several coordinators of which one leads (password from $PGPASSWORD). Default: VNET_BUS_STORE, else sqlite.")
    var store: String?
    @Option(help: "With a PostgreSQL store: seconds the leader's lease lasts (renewed every third of it). Failover takes at most about the lease plus half a second.")
    var lease = 3.0
    @Option(help: "The host name or address clients and the other coordinators reach this one at (default: the --listen host; set it when listening on 0.0.0.0).")
    var advertise: String?
    @Option(help: "HOST:PORT to listen on: PORT updates, PORT+1 node sync, PORT+2 control. Port 0 picks free ports. Default: VNET_BUS_LISTEN, else 0.0.0.0:7460.")
    var listen: String?
    @Option(help: "Key directory (coordinator.key, nodes/*.pub, admins/*.pub); see `vnetctl keys generate`.") var keys: String?
    @Flag(help: "Plain text, no CURVE: any peer can connect and claim any node. Development only.") var insecure = false
    @Option(help: "The front end's host name, as its own agent's --node-id.") var frontend = "frontend"
    @Option(name: .customLong("cluster-id")) var clusterID = "vnet"
    @Option(name: .customLong("heartbeat-interval"), help: "Seconds between heartbeats.") var heartbeatInterval = 1.0
    @Option(name: .customLong("suspect-after"), help: "Missed intervals before SUSPECT.") var suspectAfter = 2.0
    @Option(name: .customLong("down-after"), help: "Missed intervals before DOWN.") var downAfter = 3.0
    @Option(help: "Serve Prometheus metrics at http://ADDRESS/metrics, ADDRESS being IPV4:PORT (e.g. 127.0.0.1:9640). Default: off.")
    var metrics: String?
    @Option(name: .customLong("log-format"), help: "Log lines as text or json (one object per line).") var logFormat: Log.Format = .text
    @Flag(name: .customLong("watch-vlans"), help: "Keep checking every node's path to the front end on each VLAN it carries (and untagged), in small rounds; metrics vnet_vlan_path_up, changes logged.")
    var watchVLANs = false
    @Option(name: .customLong("watch-budget"), help: "Frames per second the watch may send, the whole cluster together (64-byte frames: 500/s is 32 KB/s).")
    var watchBudget = 500.0
    @Option(name: .customLong("watch-hysteresis"), help: "Consecutive results a path's state needs to change.") var watchHysteresis = 3

    func validate() throws {
        if insecure == (keys != nil) { throw ValidationError("give exactly one of --keys DIR and --insecure") }
        if heartbeatInterval < 0.01 || heartbeatInterval > 60 { throw ValidationError("--heartbeat-interval must be in 0.01-60 s") }
        if !(suspectAfter >= 1 && downAfter > suspectAfter) { throw ValidationError("need 1 <= --suspect-after < --down-after") }
        if !(16...100_000).contains(watchBudget) { throw ValidationError("--watch-budget: 16-100000 frames per second") }
        if !(1...100).contains(watchHysteresis) { throw ValidationError("--watch-hysteresis: 1-100 rounds") }
        if !(0.5...60).contains(lease) { throw ValidationError("--lease: 0.5-60 s") }
        if let advertise, advertise.isEmpty || !advertise.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-:[]".unicodeScalars.contains($0) }) {
            throw ValidationError("--advertise: '\(advertise)' is not a host name or address")
        }
    }

    func run() throws {
        Log.sink.format = logFormat
        guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { throw ValidationError("cannot read \(config)") }
        let check = ConfigValidator.validate(text: text, role: .frontend)
        guard let vnetConfig = check.config else {
            let lines = check.diagnostics.errors.map { $0.formatted(file: config) }.joined(separator: "\n")
            FileHandle.standardError.write(Data("vnet-coordinator: \(config) is not a valid front-end config:\n\(lines)\n".utf8))
            throw ExitCode.failure
        }
        var options = CoordinatorOptions(stateDirectory: stateDir,
                                         listen: try BusEndpoints(hostAndBasePort: listen ?? check.busListen ?? "0.0.0.0:\(BusEndpoints.defaultPort)"))
        options.keysDirectory = keys
        options.frontendName = frontend
        options.clusterID = clusterID
        options.heartbeatInterval = heartbeatInterval
        options.suspectAfter = suspectAfter
        options.downAfter = downAfter
        options.metrics = metrics != nil
        options.watchVLANs = watchVLANs
        options.watchFramesPerSecond = watchBudget
        options.watchHysteresis = watchHysteresis
        options.advertise = advertise
        if insecure {
            FileHandle.standardError.write(Data("vnet-coordinator: WARNING: --insecure: no CURVE; any peer can connect, read intents and claim any node\n".utf8))
        }
        do {
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
            let where_ = store ?? check.busStore ?? "sqlite"
            let coordinator: Coordinator
            if PostgresAddress.isAddress(where_) {
                // Agents judge a leader gone after 3 silent intervals; a shorter lease would hand over first.
                if lease < 3 * heartbeatInterval { throw ValidationError("--lease must be at least 3 heartbeat intervals (\(3 * heartbeatInterval) s)") }
                let address = try PostgresAddress(where_)
                let shared = PostgresClusterStore(address: address)
                try shared.migrate()
                // The lease has a connection of its own (LeaseKeeper): never queued behind a commit.
                let leaseStore = PostgresClusterStore(address: address)
                let control = try BusEndpoints(hostAndBasePort: listen ?? check.busListen ?? "0.0.0.0:\(BusEndpoints.defaultPort)").control
                let logger = Log.logger("coordinator")
                let keeper = LeaseKeeper(store: leaseStore, settings: Leadership.Settings(lease: lease), control: control) { text, warning in
                    if warning { logger.warning("\(text)") } else { logger.info("\(text)") }
                }
                coordinator = try Coordinator(config: vnetConfig, options: options, store: shared, leadership: .shared(keeper))
                keeper.control = coordinator.advertisedControl
            } else if where_ == "sqlite" {
                let file = try SQLiteClusterStore(directory: stateDir)
                coordinator = try Coordinator(config: vnetConfig, options: options, store: file, leadership: .sole(epoch: try file.startEpoch()))
            } else {
                throw ValidationError("--store: '\(where_)' is neither sqlite nor a postgresql:// address")
            }
            let server = try metrics.map { try MetricsServer(listen: $0, registry: coordinator.metrics) }
            server?.start()
            if let server { Log.logger("coordinator").info("metrics on http://\(server.address)/metrics") }
            coordinator.stopFlag.stopOnTerminationSignals()
            coordinator.run()
            server?.stop()
            Log.logger("coordinator").info("stopped; state kept in \(stateDir)")
        } catch {
            FileHandle.standardError.write(Data("vnet-coordinator: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

CoordinatorCommand.main()

extension Log.Format: ExpressibleByArgument {}
