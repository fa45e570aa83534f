import ZMQ

/// Where and how an admin client (vnetctl, the EC2 gateway) reaches the coordinator's control endpoint:
/// from `--endpoints FILE`, else `--coordinator HOST:PORT`, else the environment ($VNET_ENDPOINTS,
/// $VNET_COORDINATOR), else 127.0.0.1; CURVE with an admin key pair unless `--insecure`.
public struct ControlConnection: Sendable {
    public var endpoint: String
    public var security: SocketSecurity

    /// `usage`: the command line (or a key file it names) is wrong; `bus`: the endpoints file is.
    public enum Failure: Error, Sendable {
        case usage(String)
        case bus(String)
    }

    public init(endpoint: String, security: SocketSecurity) {
        self.endpoint = endpoint
        self.security = security
    }

    public static func resolve(coordinator: String?, endpoints: String?, key: String?, coordinatorKey: String?, insecure: Bool,
                               environment: [String: String]) throws(Failure) -> ControlConnection {
        let endpoint: String
        do {
            if let path = endpoints ?? (coordinator == nil ? environment["VNET_ENDPOINTS"] : nil) {
                endpoint = try BusEndpoints.load(from: path).control
            } else {
                endpoint = try BusEndpoints(hostAndBasePort: coordinator ?? environment["VNET_COORDINATOR"] ?? "127.0.0.1:\(BusEndpoints.defaultPort)").control
            }
        } catch { throw .bus("\(error)") }
        if insecure { return ControlConnection(endpoint: endpoint, security: .insecure) }
        guard let keyFile = key ?? environment["VNET_KEY"], let serverFile = coordinatorKey ?? environment["VNET_COORDINATOR_KEY"] else {
            throw .usage("CURVE keys needed: --key FILE --coordinator-key FILE (or $VNET_KEY, $VNET_COORDINATOR_KEY), or --insecure")
        }
        let keys: ZMQCurve.KeyPair, server: String
        do { keys = try CurveKeys.readPair(secretKeyFile: keyFile) } catch { throw .usage("--key \(keyFile): \(error)") }
        do { server = try CurveKeys.readKey(serverFile) } catch { throw .usage("--coordinator-key \(serverFile): \(error)") }
        return ControlConnection(endpoint: endpoint, security: .curveClient(keys: keys, serverPublicKey: server))
    }

    public func client(context: ZMQContext, clusterID: String) throws(BusError) -> RequestClient {
        try RequestClient(context: context, endpoint: endpoint, security: security, codec: EnvelopeCodec(clusterID: clusterID))
    }
}
