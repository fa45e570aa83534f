import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import VNetBus
import VNetCore
import VNetEC2

/// `vnet-ec2-api`: EC2 clients (awscli, boto3, euca2ools, Terraform's AWS provider with an endpoint) manage
/// security groups and elastic IPs through it; it answers them in EC2's Query API and carries each request
/// out as a control request to the coordinator, with an admin key as vnetctl does.
struct EC2APICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnet-ec2-api",
        abstract: "The EC2 Query API (security groups, elastic IPs) in front of the vnet coordinator.",
        discussion: """
        Every request must be signed with AWS Signature Version 4 by a key of --access-keys, a file of lines
        'ACCESS-KEY-ID SECRET USER [admin]' readable by this user only. Clients use --endpoint-url, e.g.
          aws --endpoint-url http://127.0.0.1:8773 --region us-east-1 ec2 describe-security-groups
        """)

    @Option(help: "Listen on HOST:PORT. Eucalyptus' cloud controller served EC2 on 8773.") var listen = "127.0.0.1:8773"
    @Option(name: .customLong("access-keys"), help: "The access keys file (ACCESS-KEY-ID SECRET USER [admin] per line).") var accessKeys: String
    @Option(help: "The region clients sign for (their --region).") var region = "us-east-1"
    @Option(name: .customLong("tls-cert"), help: "Serve HTTPS with this PEM certificate chain (with --tls-key).") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "The PEM private key of --tls-cert.") var tlsKey: String?
    @Flag(name: .customLong("plain-http"), help: "Allow plain HTTP on an address other than loopback (requests are signed, not encrypted).")
    var plainHTTP = false
    @Option(name: .customLong("max-skew"), help: "Seconds a request's X-Amz-Date may differ from this clock (EC2: 900).") var maxSkew = 900.0
    @Option(name: .customLong("max-body"), help: "Largest request body accepted, in bytes.") var maxBody = 1 << 20
    @Option(name: .customLong("request-timeout"), help: "Seconds a request has to arrive whole.") var requestTimeout = 10
    @Option(name: .customLong("max-connections"), help: "Connections served at once; more are closed at once.") var maxConnections = 512
    @Option(help: "Requests carried out at once (each holds one connection to the coordinator).") var workers = 4

    @Option(help: "The coordinator as HOST:PORT (control is PORT+2). Default: $VNET_COORDINATOR, else 127.0.0.1:7460.") var coordinator: String?
    @Option(help: "Or the coordinator's endpoints.json. Default: $VNET_ENDPOINTS.") var endpoints: String?
    @Option(help: "This gateway's admin secret key file (admins/NAME.key). Default: $VNET_KEY.") var key: String?
    @Option(name: .customLong("coordinator-key"), help: "The coordinator's public key file. Default: $VNET_COORDINATOR_KEY.") var coordinatorKey: String?
    @Flag(help: "Plain text to a coordinator started with --insecure.") var insecure = false
    @Option(name: .customLong("cluster-id")) var clusterID = "vnet"
    @Option(name: .customLong("bus-timeout"), help: "Seconds to wait for the coordinator's reply.") var busTimeout = 10.0

    @Option(help: "Serve Prometheus metrics at http://ADDRESS/metrics (IPV4:PORT). Default: off.") var metrics: String?
    @Option(name: .customLong("log-format"), help: "Log lines as text or json.") var logFormat: Log.Format = .text

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        guard maxBody >= 1024 else { throw ValidationError("--max-body must be at least 1024 bytes") }
        guard requestTimeout >= 1, maxConnections >= 1, (1...256).contains(workers) else {
            throw ValidationError("--request-timeout and --max-connections must be at least 1, --workers 1-256")
        }
        guard maxSkew >= 1 else { throw ValidationError("--max-skew must be at least 1 second") }
    }

    func run() throws {
        Log.sink.format = logFormat
        let log = Log.logger("ec2-api")
        let (host, port) = try Self.hostAndPort(listen)
        if tlsCert == nil, !plainHTTP, !Self.isLoopback(host) {
            throw ValidationError("--listen \(listen) is not loopback: give --tls-cert and --tls-key, or --plain-http to accept plain HTTP there")
        }
        let keys = try Self.readKeys(accessKeys)
        let connection: ControlConnection
        do {
            connection = try ControlConnection.resolve(coordinator: coordinator, endpoints: endpoints, key: key, coordinatorKey: coordinatorKey,
                                                       insecure: insecure, environment: ProcessInfo.processInfo.environment)
        } catch {
            switch error {
            case .usage(let message), .bus(let message): throw ValidationError(message)
            }
        }
        var tls: NIOSSLContext?
        if let tlsCert, let tlsKey {
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(tlsCert).map { NIOSSLCertificateSource.certificate($0) }
                let configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: tlsKey, format: .pem)))
                tls = try NIOSSLContext(configuration: configuration)
            } catch {
                throw ValidationError("--tls-cert \(tlsCert) / --tls-key \(tlsKey): \(error)")
            }
        }
        let registry = MetricsRegistry()
        let metricsServer = try metrics.map { try MetricsServer(listen: $0, registry: registry) }
        let workerPool = NIOThreadPool(numberOfThreads: workers)
        workerPool.start()
        let limits = Gateway.Limits(maxBody: maxBody, requestTimeout: Int64(requestTimeout), maxConnections: maxConnections)
        let gateway = Gateway(verifier: SigV4Verifier(keys: keys, region: region, maxSkew: maxSkew),
                              pool: BusPool(connection: connection, clusterID: clusterID, timeout: busTimeout),
                              workers: workerPool, limits: limits, metrics: registry)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(limits.idleTimeout)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(EC2HTTPHandler(gateway: gateway))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A client that shuts down its sending side after its request (nc -N, scripts) still gets the answer.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
        let server: Channel
        do { server = try bootstrap.bind(host: host, port: port).wait() } catch {
            throw ValidationError("cannot listen on \(listen): \(error)")
        }
        metricsServer?.start()
        log.info("serving EC2 on \(tls == nil ? "http" : "https")://\(host):\(server.localAddress?.port ?? port)/ for region \(region), \(keys.keys.count) access keys; coordinator \(connection.endpoint)")
        if let metricsServer { log.info("metrics on http://\(metricsServer.address)/metrics") }
        let stop = StopFlag()
        stop.stopOnTerminationSignals()
        while !stop.isStopped { Thread.sleep(forTimeInterval: 0.2) }
        log.info("stopping")
        try? server.close().wait()
        try? group.syncShutdownGracefully()
        try? workerPool.syncShutdownGracefully()
        metricsServer?.stop()
    }

    /// The keys file: readable by its owner only (it holds secrets), every line valid, else nothing starts.
    static func readKeys(_ path: String) throws -> AccessKeys {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ValidationError("--access-keys \(path): \(String(cString: strerror(errno)))") }
        if info.st_mode & 0o077 != 0 {
            throw ValidationError("--access-keys \(path): mode \(String(info.st_mode & 0o777, radix: 8)) lets others read the secrets; chmod 600 it")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("--access-keys \(path): not readable UTF-8 text") }
        do { return try AccessKeys.parse(text, path: path) } catch { throw ValidationError(error.description) }
    }

    static func hostAndPort(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port),
              let address = IPv4Address(String(text[..<colon])) else {
            throw ValidationError("--listen '\(text)' is not IPV4:PORT")
        }
        return (address.description, port)
    }

    static func isLoopback(_ host: String) -> Bool { host.hasPrefix("127.") }
}

EC2APICommand.main()

extension Log.Format: ExpressibleByArgument {}
