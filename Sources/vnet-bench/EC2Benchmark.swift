import ArgumentParser
import Foundation
import VNetBus
import VNetCore
import VNetEC2
import VNetProto
import VNetSystem
import ZMQ

/// `vnet-bench ec2`: an authorize's round trip, from the client's call to the rule applied by the front end's
/// agent, three ways in the same run, interleaved so that drift touches each alike: through vnet-ec2-api
/// (a SigV4-signed POST on a kept-alive connection, as boto3 sends it), through `vnetctl authorize --wait`
/// (a process per call, as an operator runs it), and the bus request alone (the baseline both are built on).
/// Real coordinator, agent (recording backend: the apply's kernel time is the same for all three) and
/// gateway processes on 127.0.0.1.
struct EC2Benchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ec2",
        abstract: "Authorize round trip through the EC2 gateway, against vnetctl and the bus request alone.")

    @Option(help: "Authorizes per way.") var rounds = 50
    @Flag(help: "Print JSON.") var json = false

    struct Way: Encodable {
        var name: String
        var p50Milliseconds: Double, p99Milliseconds: Double, meanMilliseconds: Double
    }
    struct Figures: Encodable {
        var rounds: Int
        var ways: [Way]
        var gatewayOverBus: Double
        var gatewayOverVnetctl: Double
    }

    func validate() throws {
        guard (5...2000).contains(rounds) else { throw ValidationError("--rounds must be 5-2000") }
    }

    func run() throws {
        let lab = try EC2Lab()
        defer { lab.stop() }
        var times: [String: [Double]] = ["bus": [], "gateway": [], "vnetctl": []]
        let order = ["bus", "gateway", "vnetctl"]
        for round in 0..<rounds {
            for (index, way) in order.enumerated() {
                let port = 1000 + round * order.count + index
                let before = try lab.frontendRevision().desired
                let started = monotonicSeconds()
                switch way {
                case "bus": try lab.authorizeOnBus(port: port)
                case "gateway": try lab.authorizeThroughGateway(port: port)
                default: try lab.authorizeWithVnetctl(port: port)
                }
                try lab.waitApplied(after: before)
                times[way]!.append(monotonicSeconds() - started)
            }
            if !json, round % 10 == 9 { FileHandle.standardError.write(Data("ec2: \(round + 1)/\(rounds) rounds\n".utf8)) }
        }
        func way(_ name: String) -> Way {
            let sorted = times[name]!.sorted()
            func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)] * 1000 }
            return Way(name: name, p50Milliseconds: at(0.5), p99Milliseconds: at(0.99), meanMilliseconds: sorted.reduce(0, +) / Double(sorted.count) * 1000)
        }
        let ways = order.map(way)
        let figures = Figures(rounds: rounds, ways: ways, gatewayOverBus: ways[1].p50Milliseconds / ways[0].p50Milliseconds,
                              gatewayOverVnetctl: ways[1].p50Milliseconds / ways[2].p50Milliseconds)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(figures), as: UTF8.self))
            return
        }
        print("ec2: authorize, call to rule applied on the front end, \(rounds) each (interleaved)")
        print("WAY                                P50 ms   P99 ms   MEAN ms")
        let names = ["bus": "bus request alone (baseline)", "gateway": "vnet-ec2-api (SigV4 POST)", "vnetctl": "vnetctl authorize --wait"]
        for way in ways {
            print(names[way.name]!.padding(toLength: 32, withPad: " ", startingAt: 0)
                  + String(format: " %8.2f %8.2f %9.2f", way.p50Milliseconds, way.p99Milliseconds, way.meanMilliseconds))
        }
        print(String(format: "gateway / bus: %.2fx    gateway / vnetctl: %.2fx (p50)", figures.gatewayOverBus, figures.gatewayOverVnetctl))
    }
}

/// Coordinator, front-end agent and gateway on 127.0.0.1 in a scratch directory.
final class EC2Lab {
    let directory: String
    let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    var daemons: [Process] = []
    var client: RequestClient!
    var gatewayPort = 0
    var connection: Int32 = -1
    let key = AccessKeys.Key(id: "AKIAVNETBENCH0000001", secret: "benchsecretbenchsecret0000", user: "bench", admin: false)

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-ec2-bench-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try BenchConfigs.writeNoVLAN(in: directory, addressesPerNetwork: 64)
        try "\(key.id) \(key.secret) \(key.user)\n".write(toFile: "\(directory)/ec2-keys", atomically: true, encoding: .utf8)
        chmod("\(directory)/ec2-keys", 0o600)
        try launch("coordinator", ["vnet-coordinator", "--config", "\(directory)/fe.conf", "--state-dir", "\(directory)/coordinator",
                                   "--listen", "127.0.0.1:0", "--insecure", "--frontend", "fe"])
        let endpointsFile = "\(directory)/coordinator/\(BusEndpoints.fileName)"
        try wait("the coordinator's endpoints") { FileManager.default.fileExists(atPath: endpointsFile) }
        let endpoints = try BusEndpoints.load(from: endpointsFile)
        try launch("agent-fe", ["vnet-agent", "--role", "frontend", "--config", "\(directory)/fe.conf", "--endpoints", endpointsFile, "--node-id", "fe",
                                "--state-dir", "\(directory)/agent-fe", "--insecure", "--backend", "recording"])
        try launch("agent-n1", ["vnet-agent", "--config", "\(directory)/node.conf", "--endpoints", endpointsFile, "--node-id", "n1",
                                "--state-dir", "\(directory)/agent-n1", "--insecure", "--backend", "recording"])
        try launch("ec2-api", ["vnet-ec2-api", "--access-keys", "\(directory)/ec2-keys", "--listen", "127.0.0.1:0", "--endpoints", endpointsFile, "--insecure"])
        try wait("the gateway's address") {
            let text = (try? String(contentsOfFile: "\(directory)/ec2-api.log", encoding: .utf8)) ?? ""
            guard let range = text.range(of: "serving EC2 on http://127.0.0.1:") else { return false }
            gatewayPort = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
            return gatewayPort > 0
        }
        client = try RequestClient(context: ZMQContext(), endpoint: endpoints.control, security: .insecure, codec: EnvelopeCodec(clusterID: "vnet"))
        try wait("the front end's agent UP") { (try? self.frontendRevision())?.state == "UP" }
        var group = Vnet_V1_GroupRef()
        group.user = key.user; group.group = "bench"
        _ = try call(.createGroup(group))
        // The group's rules are in the front end's state once the group has an instance.
        try wait("n1's agent UP") { (try? self.call(.listNodes(Vnet_V1_ListNodes())).nodes.contains { $0.nodeID == "n1" && $0.state == "UP" }) == true }
        var run = Vnet_V1_RunInstance()
        run.instanceID = "i-0000be01"; run.node = "n1"; run.user = key.user; run.group = "bench"
        _ = try call(.runInstance(run))
    }

    func launch(_ name: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(binaries)/\(arguments[0])")
        process.arguments = Array(arguments.dropFirst())
        FileManager.default.createFile(atPath: "\(directory)/\(name).log", contents: nil)
        let log = FileHandle(forWritingAtPath: "\(directory)/\(name).log")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        daemons.append(process)
    }

    func wait(_ what: String, timeout: Double = 20, _ condition: () -> Bool) throws {
        let deadline = monotonicSeconds() + timeout
        while !condition() {
            guard monotonicSeconds() < deadline else { throw BusError("\(what): not within \(timeout) s; logs in \(directory)") }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    func stop() {
        if connection >= 0 { close(connection) }
        // SIGKILL: started by Foundation's Process they inherit a mask holding SIGTERM.
        for process in daemons where process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws -> Vnet_V1_ControlReply {
        var request = Vnet_V1_ControlRequest()
        request.op = op
        let reply = try client.call(request, timeout: 10)
        guard reply.ok else { throw BusError("refused: \(reply.error)") }
        return reply
    }

    func frontendRevision() throws -> (state: String, desired: UInt64, applied: UInt64) {
        guard let node = try call(.listNodes(Vnet_V1_ListNodes())).nodes.first(where: { $0.nodeID == "fe" }) else { return ("", 0, 0) }
        return (node.state, node.desiredRevision, node.appliedRevision)
    }

    /// Until the front end's desired state moved past `before` and its agent applied it.
    func waitApplied(after before: UInt64) throws {
        try wait("the front end applying the rule", timeout: 10) {
            guard let now = try? frontendRevision() else { return false }
            return now.desired > before && now.applied >= now.desired
        }
    }

    func authorizeOnBus(port: Int) throws {
        var change = Vnet_V1_RuleChange()
        change.user = key.user; change.group = "bench"
        change.traffic = SecurityRule.Traffic.tcp(port...port).wire
        change.sourceCidr = "198.51.100.0/24"
        _ = try call(.authorize(change))
    }

    func authorizeWithVnetctl(port: Int) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(binaries)/vnetctl")
        process.arguments = ["authorize", "--user", key.user, "--group", "bench", "--protocol", "tcp", "--ports", String(port),
                             "--source-cidr", "198.51.100.0/24", "--wait", "--endpoints", "\(directory)/coordinator/\(BusEndpoints.fileName)", "--insecure"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw BusError("vnetctl authorize exited \(process.terminationStatus)") }
    }

    /// A signed POST on the kept-alive connection (opened on first use), answer read whole.
    func authorizeThroughGateway(port: Int) throws {
        if connection < 0 { connection = try Self.connect(gatewayPort) }
        let body = "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupName=bench&IpPermissions.1.IpProtocol=tcp"
            + "&IpPermissions.1.FromPort=\(port)&IpPermissions.1.ToPort=\(port)&IpPermissions.1.IpRanges.1.CidrIp=198.51.100.0%2F24"
        let date = SigV4Verifier.amzDate(Date().timeIntervalSince1970)
        let headers = [("Host", "127.0.0.1:\(gatewayPort)"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("X-Amz-Date", date)]
        let authorization = SigV4Verifier.authorization(accessKey: key.id, secret: key.secret, region: "us-east-1", service: "ec2", date: date,
                                                        method: "POST", path: "/", query: "", headers: headers, body: Array(body.utf8))
        let request = "POST / HTTP/1.1\r\n" + headers.map { "\($0.0): \($0.1)\r\n" }.joined()
            + "Authorization: \(authorization)\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw BusError("send to the gateway failed")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { throw BusError("the gateway closed the connection") }
            received += buffer[0..<count]
            let text = String(decoding: received, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { continue }
            let head = text[..<end.lowerBound]
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            guard received.count >= text[..<end.upperBound].utf8.count + length else { continue }
            guard head.hasPrefix("HTTP/1.1 200") else { throw BusError("the gateway answered: \(text)") }
            return
        }
    }

    static func connect(_ port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { close(descriptor); throw BusError("cannot connect to the gateway on \(port)") }
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return descriptor
    }
}
