import ArgumentParser
import Foundation
import VNetBus
import VNetProto
import ZMQ

/// How vnetctl reaches the coordinator; shared by every bus command.
struct BusOptions: ParsableArguments {
    @Option(help: "The coordinator as HOST:PORT (control is PORT+2); several, comma-separated, when they share a PostgreSQL store (requests go to the leader). Default: $VNET_COORDINATOR, else 127.0.0.1:7460.")
    var coordinator: String?
    @Option(help: "Or the coordinator's endpoints.json (several, comma-separated). Default: $VNET_ENDPOINTS.") var endpoints: String?
    @Option(help: "This admin's secret key file (admins/NAME.key). Default: $VNET_KEY.") var key: String?
    @Option(name: .customLong("coordinator-key"), help: "The coordinator's public key file. Default: $VNET_COORDINATOR_KEY.")
    var coordinatorKey: String?
    @Flag(help: "Plain text, for a coordinator started with --insecure.") var insecure = false
    @Option(name: .customLong("cluster-id")) var clusterID = "vnet"
    @Option(help: "Seconds to wait for the coordinator's reply.") var timeout = 10.0
    @Flag(help: "Print JSON.") var json = false

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// One client per run: it remembers which coordinator leads, so `--wait`'s requests go straight there.
    func client() throws -> RequestClient {
        if let client = BusContext.client { return client }
        let client = try connection().client(context: BusContext.shared, clusterID: clusterID)
        BusContext.client = client
        return client
    }

    func connection() throws -> ControlConnection {
        let connection: ControlConnection
        do {
            connection = try ControlConnection.resolve(coordinator: coordinator, endpoints: endpoints, key: key, coordinatorKey: coordinatorKey,
                                                       insecure: insecure, environment: environment)
        } catch {
            // A key file that cannot be read is a bad command line (2), not an unreachable coordinator (3).
            switch error {
            case .usage(let message): throw CommandFailure.usage(message)
            case .bus(let message): throw BusError(message)
            }
        }
        return connection
    }

    /// Sends one request; a refused request prints the coordinator's reason and exits 1, no reply exits 3.
    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws -> Vnet_V1_ControlReply {
        var request = Vnet_V1_ControlRequest()
        request.op = op
        let reply: Vnet_V1_ControlReply
        do { reply = try client().call(request, timeout: timeout) } catch let error as BusError {
            throw CommandFailure(code: 3, message: error.message)
        }
        guard reply.ok else { throw CommandFailure.invalidInput(reply.error) }
        return reply
    }
}

extension BusOptions {
    /// A request that changes the cluster: send it, report it (JSON, or `text` of the reply), then `--wait`.
    /// With `--wait`, JSON is printed once the wait is over, with what the wait found (`warnings`).
    func change(_ op: Vnet_V1_ControlRequest.OneOf_Op, wait: WaitOptions?, text: (Vnet_V1_ControlReply) -> String) throws {
        let reply = try call(op)
        if json, wait?.wait == true {
            var view = ChangeView(reply)
            view.warnings = try wait?.waitIfAsked(reply, self) ?? []
            try Output.json(view)
            return
        }
        if json { try Output.json(ChangeView(reply)) } else { Output.text(text(reply)) }
        let warnings = try wait?.waitIfAsked(reply, self) ?? []
        if !warnings.isEmpty { Output.text(warnings.map { "warning: \($0)\n" }.joined()) }
    }
}

/// vnetctl's one ZeroMQ context (a context is meant to be shared; sockets are per use).
enum BusContext {
    static let shared = ZMQContext()
    nonisolated(unsafe) static var client: RequestClient?
}

/// `--wait`: waits until every node the change affected has applied it, with a progress line. A node that
/// applied it except some objects (a missing vif, a conflict, a failed command) ends the wait as soon as it
/// says so: exit 5, naming the node, the object and the error (4 stays for a timeout). In MANAGED, a VLAN the
/// change brought up on a node is checked with the front end (a short tagged probe): the wait lasts until that
/// check is done too, and returns what did not pass as warnings (the change stands: exit 0).
struct WaitOptions: ParsableArguments {
    @Flag(help: "Wait until every affected node has applied the change.") var wait = false
    @Option(name: .customLong("wait-timeout"), help: "Seconds --wait waits before naming the nodes that lag.") var waitTimeout = 30.0

    @discardableResult
    func waitIfAsked(_ reply: Vnet_V1_ControlReply, _ bus: BusOptions) throws -> [String] {
        guard wait, !reply.affectedNodes.isEmpty else { return [] }
        let deadline = Date().addingTimeInterval(waitTimeout)
        let target = reply.revision
        var lagging = reply.affectedNodes
        var shown = -1
        // On a terminal the line is rewritten in place; in a log, a line is added only when the count moves.
        let terminal = isatty(STDERR_FILENO) == 1
        while true {
            let nodes = try bus.call(.listNodes(Vnet_V1_ListNodes())).nodes
            let applied = Dictionary(nodes.map { ($0.nodeID, $0.appliedRevision) }, uniquingKeysWith: { $1 })
            lagging = reply.affectedNodes.filter { (applied[$0] ?? 0) < target }
            let affected = Set(reply.affectedNodes)
            let failed = nodes.filter { affected.contains($0.nodeID) && $0.failedRevision >= target && !$0.failures.isEmpty }
            let done = reply.affectedNodes.count - lagging.count
            if done != shown {
                shown = done
                let line = "waiting for revision \(target): \(done)/\(reply.affectedNodes.count) nodes applied"
                FileHandle.standardError.write(Data((terminal ? "\r" + line : line + "\n").utf8))
            }
            // The bring-up checks of the VLANs this revision brought up (MANAGED).
            let checks = nodes.filter { affected.contains($0.nodeID) }.flatMap(\.vlanChecks).filter { $0.revision == target }
            if lagging.isEmpty, !checks.contains(where: { $0.state == "pending" }) || Date() > deadline {
                if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
                guard failed.isEmpty else {
                    let lines = failed.flatMap { node in node.failures.map { "  \(node.nodeID): \(FailureView($0).text)" } }
                    throw CommandFailure(code: 5, message: "revision \(target) applied except:\n" + lines.joined(separator: "\n"))
                }
                return checks.compactMap { check in
                    switch check.state {
                    case "failed", "skipped": check.detail
                    case "pending": "VID \(check.vlan): its bring-up check with the front end had not ended when --wait-timeout ran out"
                    default: nil
                    }
                }
            }
            if Date() > deadline {
                if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
                throw CommandFailure(code: 4, message: "timed out after \(waitTimeout) s; revision \(target) not applied by: \(lagging.joined(separator: ", "))")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }
}
