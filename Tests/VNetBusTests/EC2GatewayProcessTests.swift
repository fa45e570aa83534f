import Foundation
import Testing
import VNetBus
import VNetCore
import VNetEC2
import VNetProto

/// vnet-ec2-api as a process in front of a real coordinator (CURVE, the gateway's own admin key), driven by
/// Debian's awscli and python3-boto3 and by raw sockets; moto in server mode answers the same calls for the
/// differential test. The data plane's side (rules and public IPs taking effect) is in the namespace lane
/// (VNetRootTests' EC2 suite).
@Suite("EC2 gateway processes on 127.0.0.1", .serialized)
struct EC2GatewayProcessTests {
    static let alice = AccessKeys.Key(id: "AKIAVNETALICE0000001", secret: "alicesecretalicesecret0000", user: "alice", admin: false)
    static let bob = AccessKeys.Key(id: "AKIAVNETBOB000000001", secret: "bobsecretbobsecretbob00000", user: "bob", admin: false)
    static let ops = AccessKeys.Key(id: "AKIAVNETOPS000000001", secret: "opssecretopssecretops00000", user: "ops", admin: true)

    @Test func awscliDrivesGroupsAndAddresses() throws {
        let (cluster, gateway) = try EC2Gateway.start()
        _ = cluster
        let web = try gateway.aws(["create-security-group", "--group-name", "web", "--description", "web servers"])
        let webID = try #require(web.json?["GroupId"] as? String)
        #expect(webID == EC2Identifiers.groupID(GroupID(user: "alice", name: "web")))
        _ = try gateway.aws(["authorize-security-group-ingress", "--group-name", "web", "--protocol", "tcp", "--port", "22", "--cidr", "198.51.100.0/24"])
        _ = try gateway.aws(["create-security-group", "--group-name", "db", "--description", "databases"])
        _ = try gateway.aws(["authorize-security-group-ingress", "--group-name", "db", "--ip-permissions",
                             "IpProtocol=icmp,FromPort=-1,ToPort=-1,UserIdGroupPairs=[{GroupId=\(webID)}]"])
        let described = try gateway.aws(["describe-security-groups", "--group-names", "db"])
        let groups = try #require(described.json?["SecurityGroups"] as? [[String: Any]])
        let permission = try #require((groups.first?["IpPermissions"] as? [[String: Any]])?.first)
        #expect(permission["IpProtocol"] as? String == "icmp" && (permission["UserIdGroupPairs"] as? [[String: Any]])?.first?["GroupId"] as? String == webID,
                "\(described.output)")
        let duplicate = try gateway.aws(["authorize-security-group-ingress", "--group-name", "web", "--protocol", "tcp", "--port", "22", "--cidr", "198.51.100.0/24"])
        #expect(duplicate.status == 254 && duplicate.errors.contains("(InvalidPermission.Duplicate)"), "\(duplicate.errors)")
        let address = try gateway.aws(["allocate-address"])
        let publicIP = try #require(address.json?["PublicIp"] as? String)
        #expect(publicIP == "203.0.113.10")
        let listed = try gateway.aws(["describe-addresses"])
        #expect((listed.json?["Addresses"] as? [[String: Any]])?.map { $0["PublicIp"] as? String } == [publicIP])
        // Checked against the coordinator itself: the rule and the owner are what the clients asked for.
        let state = try cluster.control(.describeGroups(Vnet_V1_DescribeGroups())).groups
        #expect(state.first { $0.user == "alice" && $0.group == "web" }?.rules.first?.sourceCidr == "198.51.100.0/24")
        #expect(try cluster.control(.describeAddresses(Vnet_V1_DescribeAddresses())).addresses.first?.owner == "alice")
        // The operator sees whose it is.
        let operatorView = try run([ClusterHarness.binaries.appendingPathComponent("vnetctl").path, "describe-addresses", "--json", "--endpoints", cluster.endpointsFile,
                                    "--key", "\(cluster.keys)/admins/tester.key", "--coordinator-key", "\(cluster.keys)/coordinator.pub"])
        #expect(operatorView.output.contains("\"owner\" : \"alice\"") || operatorView.output.contains("\"owner\":\"alice\""), "\(operatorView.output)\(operatorView.errors)")
        _ = try gateway.aws(["revoke-security-group-ingress", "--group-name", "web", "--protocol", "tcp", "--port", "22", "--cidr", "198.51.100.0/24"])
        _ = try gateway.aws(["release-address", "--public-ip", publicIP])
        #expect(try cluster.control(.describeAddresses(Vnet_V1_DescribeAddresses())).addresses.isEmpty)
    }

    /// The same sequence against moto: the same error codes, and every field vnet answers is one moto answers
    /// too, with the same JSON type. Where vnet differs on purpose (README "EC2 API"), the values differ, not
    /// the shapes.
    @Test func answersHaveMotosShapesAndErrorCodes() throws {
        let (_, gateway) = try EC2Gateway.start()
        let moto = try MotoServer()
        let calls: [[String: Any]] = [
            ["op": "create_security_group", "args": ["GroupName": "web", "Description": "web servers"], "save": ["web": "GroupId"]],
            ["op": "create_security_group", "args": ["GroupName": "db", "Description": "databases"], "save": ["db": "GroupId"]],
            ["op": "create_security_group", "args": ["GroupName": "web", "Description": "again"]],
            ["op": "authorize_security_group_ingress", "args": ["GroupName": "web", "IpPermissions": [
                ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "198.51.100.0/24"]]]]]],
            ["op": "authorize_security_group_ingress", "args": ["GroupId": "$db", "IpPermissions": [
                ["IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [["GroupId": "$web"]]]]]],
            ["op": "authorize_security_group_ingress", "args": ["GroupName": "web", "IpPermissions": [
                ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "198.51.100.0/24"]]]]]],
            ["op": "revoke_security_group_ingress", "args": ["GroupName": "web", "IpPermissions": [
                ["IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [["CidrIp": "198.51.100.0/24"]]]]]],
            ["op": "describe_security_groups", "args": ["GroupNames": ["web", "db"]]],
            ["op": "describe_security_groups", "args": ["GroupNames": ["nosuch"]]],
            ["op": "describe_security_groups", "args": ["GroupIds": ["$web"]]],
            ["op": "delete_security_group", "args": ["GroupName": "nosuch"]],
            ["op": "revoke_security_group_ingress", "args": ["GroupName": "web", "IpPermissions": [
                ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "198.51.100.0/24"]]]]]],
            ["op": "allocate_address", "save": ["ip": "PublicIp"]],
            ["op": "describe_addresses"],
            ["op": "associate_address", "args": ["PublicIp": "$ip", "InstanceId": "i-0000dead"]],
            ["op": "release_address", "args": ["PublicIp": "192.0.2.77"]],
            ["op": "release_address", "args": ["PublicIp": "$ip"]],
            ["op": "describe_addresses"],
            ["op": "delete_security_group", "args": ["GroupName": "web"]],
        ]
        let ours = try gateway.boto3(calls)
        let theirs = try boto3(calls, endpoint: moto.endpoint, key: Self.alice)
        try #require(ours.count == calls.count && theirs.count == calls.count, "ours: \(ours)\nmoto: \(theirs)")
        // Deliberate differences (README "EC2 API"): vnet's groups are EC2-Classic groups, so deleting a group
        // that another group's rule names is refused (DependencyViolation) where moto's VPC groups allow it.
        let deliberate: [Int: (String, String)] = [calls.count - 1: ("DependencyViolation", "ok")]
        for (index, (mine, motos)) in zip(ours, theirs).enumerated() {
            let op = calls[index]["op"] as! String
            if let (vnetCode, motoCode) = deliberate[index] {
                #expect(Self.code(mine) == vnetCode && Self.code(motos) == motoCode, "\(index) \(op): \(mine) / \(motos)")
                continue
            }
            #expect(Self.code(mine) == Self.code(motos), "\(index) \(op): vnet \(mine)\nmoto \(motos)")
            if let result = mine["result"], let theirResult = motos["result"] {
                let missing = Self.shapeDifferences(result, theirResult, path: op)
                #expect(missing.isEmpty, "\(index) \(op): fields moto does not answer the same way: \(missing)")
            }
        }
    }

    static func code(_ line: [String: Any]) -> String { (line["ok"] as? Bool) == true ? "ok" : (line["code"] as? String ?? "?") }

    /// Paths of `ours` that `theirs` lacks or holds with another JSON type (list elements compared with the
    /// first of theirs).
    static func shapeDifferences(_ ours: Any, _ theirs: Any, path: String) -> [String] {
        switch (ours, theirs) {
        case (let a as [String: Any], let b as [String: Any]):
            return a.keys.sorted().flatMap { key in b[key].map { shapeDifferences(a[key]!, $0, path: "\(path).\(key)") } ?? ["\(path).\(key) (absent)"] }
        case (let a as [Any], let b as [Any]):
            guard let model = b.first else { return [] }
            return a.flatMap { shapeDifferences($0, model, path: "\(path)[]") }
        case (is String, is String), (is NSNumber, is NSNumber):
            // Numbers and booleans both come as NSNumber from JSONSerialization here; botocore typed them.
            return []
        default:
            return ["\(path) (\(type(of: ours)) vs \(type(of: theirs)))"]
        }
    }

    @Test func signaturesKeysAndClocksAreChecked() throws {
        let (cluster, gateway) = try EC2Gateway.start()
        let before = try cluster.control(.status(Vnet_V1_StatusRequest())).status.revision
        let create: [[String: Any]] = [["op": "create_security_group", "args": ["GroupName": "web", "Description": "x"]]]
        var wrongSecret = Self.alice
        wrongSecret.secret = "notalicesecretnotalicesecret"
        #expect(try gateway.boto3(create, key: wrongSecret).map(Self.code) == ["SignatureDoesNotMatch"])
        var unknown = Self.alice
        unknown.id = "AKIAVNETNOBODY000001"
        #expect(try gateway.boto3(create, key: unknown).map(Self.code) == ["AuthFailure"])
        #expect(try gateway.boto3(create, skew: 3600).map(Self.code) == ["RequestExpired"])
        #expect(try gateway.boto3(create, skew: -3600).map(Self.code) == ["RequestExpired"])
        #expect(try cluster.control(.status(Vnet_V1_StatusRequest())).status.revision == before, "a refused request changed nothing")
        // botocore's presigned URL (the query-string form). botocore signs it for EC2's method, POST, with
        // an empty body; Debian's botocore signs with AWS CRT's signer when awscrt is there.
        let presign = """
        import boto3, urllib.request
        client = boto3.client("ec2", endpoint_url="\(gateway.endpoint)", region_name="us-east-1",
                              aws_access_key_id="\(Self.alice.id)", aws_secret_access_key="\(Self.alice.secret)")
        url = client.generate_presigned_url("describe_security_groups", ExpiresIn=60)
        print(urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST")).read().decode())
        """
        let fetched = try run(["/usr/bin/python3", "-c", presign])
        #expect(fetched.status == 0 && fetched.output.contains("<DescribeSecurityGroupsResponse"), "\(fetched.output)\(fetched.errors)")
        // Users see only their own; the admin key sees all.
        _ = try gateway.boto3(create)
        _ = try gateway.boto3(create, key: Self.bob)
        let aliceSees = try gateway.boto3([["op": "describe_security_groups"]])
        let opsSees = try gateway.boto3([["op": "describe_security_groups"]], key: Self.ops)
        func owners(_ lines: [[String: Any]]) -> [String] {
            ((lines.first?["result"] as? [String: Any])?["SecurityGroups"] as? [[String: Any]] ?? []).compactMap { $0["OwnerId"] as? String }.sorted()
        }
        #expect(owners(aliceSees) == ["alice"] && owners(opsSees) == ["alice", "bob"], "\(aliceSees) \(opsSees)")
    }

    /// Every refusal the issue names, each from a real boto3 call (with the cluster's state behind it), and
    /// the HTTP status EC2 answers it with. A refused call changed nothing.
    @Test func everyErrorCodeFromARealClient() throws {
        let model = try ClusterHarness()
        let config = try String(contentsOfFile: model.frontendConfig, encoding: .utf8)
            .replacingOccurrences(of: "203.0.113.10-203.0.113.60", with: "203.0.113.10-203.0.113.11")
        let (cluster, gateway) = try EC2Gateway.start(frontendConfig: config)
        let ssh: [String: Any] = ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "198.51.100.0/24"]]]
        let lines = try gateway.boto3([
            ["op": "create_security_group", "args": ["GroupName": "web", "Description": "x"], "save": ["web": "GroupId"]],
            ["op": "create_security_group", "args": ["GroupName": "db", "Description": "x"]],
            ["op": "authorize_security_group_ingress", "args": ["GroupName": "web", "IpPermissions": [ssh]]],
            ["op": "authorize_security_group_ingress", "args": ["GroupName": "db", "IpPermissions": [
                ["IpProtocol": "-1", "UserIdGroupPairs": [["GroupId": "$web"]]]]]],
            ["op": "allocate_address"],
            ["op": "allocate_address"],
            // The refusals.
            ["op": "describe_security_groups", "args": ["GroupNames": ["nosuch"]]],
            ["op": "create_security_group", "args": ["GroupName": "web", "Description": "x"]],
            ["op": "authorize_security_group_ingress", "args": ["GroupName": "web", "IpPermissions": [ssh]]],
            ["op": "revoke_security_group_ingress", "args": ["GroupName": "db", "IpPermissions": [ssh]]],
            ["op": "authorize_security_group_ingress", "args": ["GroupName": "web", "IpPermissions": [
                ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "198.51.100.0/33"]]]]]],
            ["op": "allocate_address"],
            ["op": "release_address", "args": ["PublicIp": "203.0.113.99"]],
            ["op": "associate_address", "args": ["PublicIp": "203.0.113.10", "InstanceId": "i-0000dead"]],
            ["op": "delete_security_group", "args": ["GroupId": "$web"]],
        ])
        #expect(lines.prefix(6).map(Self.code) == Array(repeating: "ok", count: 6), "\(lines)")
        let refusals = lines.dropFirst(6)
        #expect(refusals.map(Self.code) == ["InvalidGroup.NotFound", "InvalidGroup.Duplicate", "InvalidPermission.Duplicate", "InvalidPermission.NotFound",
                                           "InvalidParameterValue", "AddressLimitExceeded", "InvalidAddress.NotFound", "InvalidInstanceID.NotFound",
                                           "DependencyViolation"], "\(refusals)")
        #expect(refusals.allSatisfy { ($0["status"] as? Int) == 400 && !(($0["message"] as? String) ?? "").isEmpty }, "\(refusals)")
        let groups = try cluster.control(.describeGroups(Vnet_V1_DescribeGroups())).groups
        #expect(groups.map(\.group).sorted() == ["db", "web"] && groups.first { $0.group == "web" }?.rules.count == 1)
        #expect(try cluster.control(.describeAddresses(Vnet_V1_DescribeAddresses())).addresses.count == 2)
    }

    @Test func systemAndStaticModesRefuseWithAnEC2Error() throws {
        let (_, gateway) = try EC2Gateway.start(frontendConfig: """
        VNET_MODE="STATIC"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="10.20.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="192.0.2.53"
        VNET_ROUTER="10.20.0.1"
        VNET_BROADCAST="10.20.255.255"
        VNET_MACMAP="D0:0D:00:00:00:01=10.20.0.5"

        """)
        let lines = try gateway.boto3([["op": "create_security_group", "args": ["GroupName": "web", "Description": "x"]], ["op": "allocate_address"]])
        #expect(lines.map(Self.code) == ["UnsupportedOperation", "UnsupportedOperation"], "\(lines)")
        #expect((lines.first?["message"] as? String)?.contains("STATIC") == true)
    }

    @Test func tlsWithTheOperatorsCertificate() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try run(["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "\(directory)/key.pem", "-out", "\(directory)/cert.pem"])
        try #require(made.status == 0, "\(made.errors)")
        let (_, gateway) = try EC2Gateway.start(extra: ["--tls-cert", "\(directory)/cert.pem", "--tls-key", "\(directory)/key.pem"])
        #expect(gateway.endpoint.hasPrefix("https://"))
        let lines = try gateway.boto3([["op": "create_security_group", "args": ["GroupName": "web", "Description": "x"]]], verify: "\(directory)/cert.pem")
        #expect(lines.map(Self.code) == ["ok"], "\(lines)")
        // Plain HTTP to the TLS port is not served.
        let plain = try RawHTTP.exchange(port: gateway.port, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), timeout: 3)
        #expect(plain.status == nil, "\(plain.text)")
    }

    @Test func startupRefusesUnsafeOrBrokenSettings() throws {
        let cluster = try ClusterHarness()
        try cluster.startCoordinator()
        let keys = "\(cluster.directory)/ec2-keys"
        try "AKIAVNETALICE0000001 alicesecretalicesecret0000 alice\n".write(toFile: keys, atomically: true, encoding: .utf8)
        chmod(keys, 0o644)
        var result = try run([ClusterHarness.binaries.appendingPathComponent("vnet-ec2-api").path, "--access-keys", keys, "--insecure"])
        #expect(result.status != 0 && result.errors.contains("chmod 600"), "\(result.errors)")
        chmod(keys, 0o600)
        try "AKIAVNETALICE0000001 alicesecretalicesecret0000 alice\nAKIAVNETBOB000000001 short bob\n".write(toFile: keys, atomically: true, encoding: .utf8)
        chmod(keys, 0o600)
        result = try run([ClusterHarness.binaries.appendingPathComponent("vnet-ec2-api").path, "--access-keys", keys, "--insecure"])
        #expect(result.status != 0 && result.errors.contains("\(keys):2:"), "\(result.errors)")
        try "AKIAVNETALICE0000001 alicesecretalicesecret0000 alice\n".write(toFile: keys, atomically: true, encoding: .utf8)
        result = try run([ClusterHarness.binaries.appendingPathComponent("vnet-ec2-api").path, "--access-keys", keys, "--insecure", "--listen", "0.0.0.0:8773"])
        #expect(result.status != 0 && result.errors.contains("--plain-http"), "\(result.errors)")
    }

    /// Fuzzed requests (signed ones with bytes changed, and garbage), oversized bodies, a slow client and a
    /// flood of connections: every request gets an answer or its connection is closed, nothing changes, and
    /// a real client is served throughout.
    @Test func badInputAndSlowClientsLeaveItServing() throws {
        let (cluster, gateway) = try EC2Gateway.start(extra: ["--request-timeout", "2", "--max-connections", "64"])
        _ = try gateway.boto3([["op": "create_security_group", "args": ["GroupName": "web", "Description": "x"]]])
        let before = try cluster.control(.status(Vnet_V1_StatusRequest())).status.revision
        var generator = SeededGenerator(seed: 17)
        let body = "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupName=web&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=80&IpPermissions.1.ToPort=80&IpPermissions.1.IpRanges.1.CidrIp=192.0.2.0%2F24"
        let valid = gateway.signedRequest(body: body, key: Self.alice)
        var answered = 0, closed = 0, accepted = 0
        for round in 0..<600 {
            var bytes = valid
            switch round % 4 {
            case 0, 1:
                // A few bytes changed anywhere: head, signature, body.
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            case 2:
                // Random bytes after a plausible request line.
                bytes = Array("POST / HTTP/1.1\r\n".utf8) + (0..<Int.random(in: 0...600, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            default:
                // A signed request with a fuzzed query string: the signature covers it, so it must be refused.
                let junk = (0..<Int.random(in: 1...60, using: &generator)).map { _ in Character(Unicode.Scalar(UInt8.random(in: 33...126, using: &generator))) }
                bytes = gateway.signedRequest(body: body, key: Self.alice, query: String(junk).replacingOccurrences(of: "#", with: "%23"), signQuery: false)
            }
            let reply = try RawHTTP.exchange(port: gateway.port, bytes, timeout: 5)
            if let status = reply.status { answered += 1; if status == 200 { accepted += 1 } } else { closed += 1 }
        }
        #expect(answered + closed == 600 && answered > 100, "answered \(answered), closed \(closed)")
        // A request left unchanged by its mutation (a byte replaced by itself) is valid and may be accepted.
        #expect(accepted <= 1, "a changed request was accepted \(accepted) times")
        #expect(try cluster.control(.status(Vnet_V1_StatusRequest())).status.revision == before + UInt64(accepted),
                "nothing changed: \(cluster.log("ec2-api").split(separator: "\n").filter { $0.contains(": 200") }.suffix(5))")

        // Oversized: refused from its Content-Length, before the body is read.
        let huge = Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000000\r\n\r\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 100_000)
        let oversized = try RawHTTP.exchange(port: gateway.port, huge, timeout: 5)
        #expect(oversized.status == 413 && oversized.text.contains("RequestEntityTooLarge"), "\(oversized.text)")
        // Slow clients: each sends a head and then nothing; a real client is served meanwhile; they are cut off.
        let slow = try (0..<8).map { _ in try RawHTTP.connect(port: gateway.port) }
        for socket in slow { _ = Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nAct".utf8).withUnsafeBytes { write(socket, $0.baseAddress, $0.count) } }
        let started = Date()
        #expect(try gateway.boto3([["op": "describe_security_groups"]]).map(Self.code) == ["ok"])
        #expect(Date().timeIntervalSince(started) < 2, "served while slow clients hold connections")
        for socket in slow {
            let answer = RawHTTP.read(socket, timeout: 6)
            #expect(answer.contains(" 408 ") || answer.isEmpty, "\(answer)")
            close(socket)
        }
        // A flood of idle connections beyond --max-connections: the excess is closed, the service goes on.
        let flood = try (0..<80).map { _ in try RawHTTP.connect(port: gateway.port) }
        Thread.sleep(forTimeInterval: 0.3)
        // Served, or (its connection being one too many) closed at once: never left hanging.
        #expect(["ok", "ConnectionClosed"].contains(try gateway.boto3([["op": "describe_security_groups"]]).map(Self.code).first ?? "none"))
        flood.forEach { close($0) }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try gateway.boto3([["op": "describe_security_groups"]]).map(Self.code) == ["ok"])
        #expect(gateway.process.isRunning)
        let refusedConnections = try gateway.metric("vnet_ec2_refused_connections_total")
        #expect(refusedConnections >= 16, "\(refusedConnections)")
    }
}

/// A gateway started against a `ClusterHarness` coordinator, with alice, bob (users) and ops (admin).
struct EC2Gateway {
    let cluster: ClusterHarness
    let process: Process
    let endpoint: String
    let port: Int

    static func start(frontendConfig: String? = nil, extra: [String] = []) throws -> (ClusterHarness, EC2Gateway) {
        let cluster = try ClusterHarness()
        if let frontendConfig { try frontendConfig.write(toFile: cluster.frontendConfig, atomically: true, encoding: .utf8) }
        try cluster.startCoordinator()
        let keys = "\(cluster.directory)/ec2-keys"
        try [EC2GatewayProcessTests.alice, EC2GatewayProcessTests.bob, EC2GatewayProcessTests.ops]
            .map { "\($0.id) \($0.secret) \($0.user)\($0.admin ? " admin" : "")\n" }.joined().write(toFile: keys, atomically: true, encoding: .utf8)
        chmod(keys, 0o600)
        let process = try cluster.launch("vnet-ec2-api", ["--access-keys", keys, "--listen", "127.0.0.1:0", "--endpoints", cluster.endpointsFile,
                                                          "--key", "\(cluster.keys)/admins/tester.key", "--coordinator-key", "\(cluster.keys)/coordinator.pub",
                                                          "--metrics", "127.0.0.1:0"] + extra,
                                         log: "\(cluster.directory)/ec2-api.log")
        cluster.extraProcesses.append(process)
        var endpoint = ""
        try cluster.waitUntil(timeout: 10, "the gateway says where it listens") {
            let text = cluster.log("ec2-api")
            guard let range = text.range(of: "serving EC2 on ") else { return false }
            endpoint = String(text[range.upperBound...].prefix { $0 != " " })
            return true
        }
        endpoint = String(endpoint.dropLast())  // the trailing "/"
        let port = Int(endpoint.split(separator: ":").last!)!
        return (cluster, EC2Gateway(cluster: cluster, process: process, endpoint: endpoint, port: port))
    }

    func boto3(_ calls: [[String: Any]], key: AccessKeys.Key = EC2GatewayProcessTests.alice, skew: Int = 0, verify: String? = nil) throws -> [[String: Any]] {
        try VNetBusTests.boto3(calls, endpoint: endpoint, key: key, skew: skew, verify: verify)
    }

    /// Debian's awscli (`aws`, v2): (exit status, stdout parsed as JSON when it is, stderr).
    func aws(_ arguments: [String], key: AccessKeys.Key = EC2GatewayProcessTests.alice) throws -> (status: Int32, output: String, errors: String, json: [String: Any]?) {
        let result = try run(["/usr/bin/aws", "--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json", "ec2"] + arguments,
                             environment: ["AWS_ACCESS_KEY_ID": key.id, "AWS_SECRET_ACCESS_KEY": key.secret, "AWS_CONFIG_FILE": "/dev/null",
                                           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": "", "HOME": cluster.directory])
        return (result.status, result.output, result.errors, try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
    }

    /// A whole HTTP request signed as a client signs it. `query` (unsigned when `signQuery` is false) goes in the URL.
    func signedRequest(body: String, key: AccessKeys.Key, query: String = "", signQuery: Bool = true) -> [UInt8] {
        let date = SigV4Verifier.amzDate(Date().timeIntervalSince1970)
        let headers = [("Host", "127.0.0.1:\(port)"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("X-Amz-Date", date)]
        let authorization = SigV4Verifier.authorization(accessKey: key.id, secret: key.secret, region: "us-east-1", service: "ec2", date: date,
                                                        method: "POST", path: "/", query: signQuery ? query : "", headers: headers, body: Array(body.utf8))
        let head = "POST /\(query.isEmpty ? "" : "?" + query) HTTP/1.1\r\n" + headers.map { "\($0.0): \($0.1)\r\n" }.joined()
            + "Authorization: \(authorization)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + Array(body.utf8)
    }

    func metric(_ name: String) throws -> Double {
        let address = try cluster.metricsAddress("ec2-api")
        let port = Int(address.split(separator: ":").last!)!
        let text = try RawHTTP.exchange(port: port, Array("GET /metrics HTTP/1.0\r\n\r\n".utf8), timeout: 3).text
        return text.split(separator: "\n").filter { $0.hasPrefix(name) }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
}

/// moto in server mode (deploy/install-deps.sh puts it in /opt/vnet-moto), on a free port; killed when released.
final class MotoServer {
    let process: Process
    let endpoint: String

    init() throws {
        let port = try RawHTTP.freePort()
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/opt/vnet-moto/bin/moto_server")
        process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        endpoint = "http://127.0.0.1:\(port)"
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let socket = try? RawHTTP.connect(port: port) { close(socket); return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw RawHTTP.Failure("moto_server did not listen on \(port) within 20 s")
    }

    deinit { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
}

/// Runs Tests/EC2Clients/ec2_calls.py with Debian's python3 (and python3-boto3).
func boto3(_ calls: [[String: Any]], endpoint: String, key: AccessKeys.Key, skew: Int = 0, verify: String? = nil) throws -> [[String: Any]] {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("EC2Clients/ec2_calls.py").path
    var spec: [String: Any] = ["endpoint": endpoint, "key": key.id, "secret": key.secret, "region": "us-east-1", "calls": calls, "skew": skew]
    spec["verify"] = verify ?? false
    let result = try run(["/usr/bin/python3", script], input: try JSONSerialization.data(withJSONObject: spec))
    guard result.status == 0 else { throw RawHTTP.Failure("ec2_calls.py exited \(result.status): \(result.errors)") }
    return result.output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
}

/// A command's (status, stdout, stderr); stderr through a file so that two full pipes cannot block each other.
func run(_ command: [String], input: Data? = nil, environment: [String: String]? = nil) throws -> (status: Int32, output: String, errors: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst())
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let output = Pipe(), inputPipe = Pipe()
    process.standardOutput = output
    process.standardInput = inputPipe
    let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-run-\(UUID().uuidString.prefix(8)).err").path
    FileManager.default.createFile(atPath: errorFile, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errorFile) }
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorFile))
    try process.run()
    if let input { inputPipe.fileHandleForWriting.write(input) }
    try? inputPipe.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? "")
}

/// HTTP over a plain socket, for what no client library sends: damaged requests, slow ones, floods.
enum RawHTTP {
    struct Failure: Error, CustomStringConvertible { var description: String; init(_ text: String) { description = text } }

    static func connect(port: Int) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { close(descriptor); throw Failure("connect to \(port): \(String(cString: strerror(errno)))") }
        return descriptor
    }

    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Everything the peer sends until it closes or `timeout` passes.
    static func read(_ descriptor: Int32, timeout: Double) -> String {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            var poll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&poll, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Sends `bytes` and reads the answer: its status, or nil when the connection closed without one.
    static func exchange(port: Int, _ bytes: [UInt8], timeout: Double) throws -> (status: Int?, text: String) {
        let descriptor = try connect(port: port)
        defer { close(descriptor) }
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(descriptor, Int32(SHUT_WR))
        let text = read(descriptor, timeout: timeout)
        guard text.hasPrefix("HTTP/1."), text.count > 12, let status = Int(text.dropFirst(9).prefix(3)) else { return (nil, text) }
        return (status, text)
    }
}
