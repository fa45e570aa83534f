import ZMQ

/// Where and how an admin client (vnetctl, the EC2 gateway) reaches the coordinators' control endpoints:
/// from `--endpoints FILE[,FILE…]`, else `--coordinator HOST:PORT[,HOST:PORT…]`, else the environment
/// ($VNET_ENDPOINTS, $VNET_COORDINATOR, lists too), else 127.0.0.1; CURVE with an admin key pair unless
/// `--insecure`. With several, requests follow the leader (RequestClient).
public struct ControlConnection: Sendable {
    public var endpoints: [String]
    public var security: SocketSecurity
    public var endpoint: String { endpoints.joined(separator: ",") }

    /// `usage`: the command line (or a key file it names) is wrong; `bus`: the endpoints file is.
    public enum Failure: Error, Sendable {
        case usage(String)
        case bus(String)
    }

    public init(endpoints: [String], security: SocketSecurity) {
        self.endpoints = endpoints
        self.security = security
    }

    public static func resolve(coordinator: String?, endpoints: String?, key: String?, coordinatorKey: String?, insecure: Bool,
                               environment: [String: String]) throws(Failure) -> ControlConnection {
        let found: [String]
        do {
            if let paths = endpoints ?? (coordinator == nil ? environment["VNET_ENDPOINTS"] : nil) {
                found = try BusEndpoints.list(paths).map { path throws(BusError) in try BusEndpoints.load(from: path).control }
            } else {
                found = try BusEndpoints.list(coordinator ?? environment["VNET_COORDINATOR"] ?? "127.0.0.1:\(BusEndpoints.defaultPort)")
                    .map { text throws(BusError) in try BusEndpoints(hostAndBasePort: text).control }
            }
        } catch { throw .bus("\(error)") }
        if insecure { return ControlConnection(endpoints: found, security: .insecure) }
        guard let keyFile = key ?? environment["VNET_KEY"], let serverFile = coordinatorKey ?? environment["VNET_COORDINATOR_KEY"] else {
            throw .usage("CURVE keys needed: --key FILE --coordinator-key FILE (or $VNET_KEY, $VNET_COORDINATOR_KEY), or --insecure")
        }
        let keys: ZMQCurve.KeyPair, server: String
        do { keys = try CurveKeys.readPair(secretKeyFile: keyFile) } catch { throw .usage("--key \(keyFile): \(error)") }
        do { server = try CurveKeys.readKey(serverFile) } catch { throw .usage("--coordinator-key \(serverFile): \(error)") }
        return ControlConnection(endpoints: found, security: .curveClient(keys: keys, serverPublicKey: server))
    }

    public func client(context: ZMQContext, clusterID: String) throws(BusError) -> RequestClient {
        try RequestClient(context: context, endpoints: endpoints, security: security, codec: EnvelopeCodec(clusterID: clusterID))
    }
}
