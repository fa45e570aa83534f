import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// The EC2 API's acceptance on real kernel objects: awscli and boto3 (Debian's) drive vnet-ec2-api on the
/// front end of a MANAGED-NOVLAN cluster in namespaces; what they change is checked on the data plane — pings
/// between instances that a group rule allows, a TCP connect from the outside host to an instance's public IP
/// that a CIDR rule allows, and both denied again once revoked or disassociated.
@Suite("EC2 API on a cluster in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct EC2GatewayClusterTests {
    static let alice = (id: "AKIAVNETALICE0000001", secret: "alicesecretalicesecret0000")

    @Test func clientsChangeWhatTheDataPlaneAllows() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()
        let keys = "\(cluster.directory)/ec2-keys"
        try "\(Self.alice.id) \(Self.alice.secret) alice\n".write(toFile: keys, atomically: true, encoding: .utf8)
        chmod(keys, 0o600)
        try cluster.start(cluster.frontEnd, "ec2-api", "vnet-ec2-api", ["--access-keys", keys, "--listen", "127.0.0.1:8773",
                                                                       "--coordinator", "10.99.0.1:7460", "--insecure"])
        let listening = Date().addingTimeInterval(10)
        while Date() < listening, !cluster.log("ec2-api").contains("serving EC2 on") { Thread.sleep(forTimeInterval: 0.05) }

        func boto3(_ calls: [[String: Any]]) throws -> [[String: Any]] {
            let spec: [String: Any] = ["endpoint": "http://127.0.0.1:8773", "key": Self.alice.id, "secret": Self.alice.secret, "calls": calls]
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("EC2Clients/ec2_calls.py").path
            let output = try cluster.runner(cluster.frontEnd).run(["/usr/bin/python3", script], input: Array(try JSONSerialization.data(withJSONObject: spec)))
            return String(decoding: output, as: UTF8.self).split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        func codes(_ lines: [[String: Any]]) -> [String] { lines.map { ($0["ok"] as? Bool) == true ? "ok" : ($0["code"] as? String ?? "?") } }
        func aws(_ arguments: [String]) -> (ok: Bool, text: String) {
            do {
                let output = try cluster.runner(cluster.frontEnd).run(["/usr/bin/env", "AWS_ACCESS_KEY_ID=\(Self.alice.id)", "AWS_SECRET_ACCESS_KEY=\(Self.alice.secret)",
                                                                       "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "HOME=\(cluster.directory)",
                                                                       "/usr/bin/aws", "--endpoint-url", "http://127.0.0.1:8773", "--region", "us-east-1",
                                                                       "--output", "json", "ec2"] + arguments, input: nil)
                return (true, String(decoding: output, as: UTF8.self))
            } catch { return (false, "\(error)") }
        }
        /// The API is asynchronous, as EC2's is: a change is accepted, then applied on the hosts.
        func eventually(_ seconds: Double = 15, _ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline { if condition() { return true }; Thread.sleep(forTimeInterval: 0.3) }
            return condition()
        }
        func tcpConnect(from namespace: ScratchNamespace, _ address: String, _ port: Int) -> Bool {
            (try? cluster.runner(namespace).run(["/usr/bin/python3", "-c",
                "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()", address, String(port)], input: nil)) != nil
        }

        let created = try boto3([["op": "create_security_group", "args": ["GroupName": "web", "Description": "web servers"], "save": ["web": "GroupId"]],
                                 ["op": "create_security_group", "args": ["GroupName": "db", "Description": "databases"]]])
        try #require(codes(created) == ["ok", "ok"], "\(created)\n\(cluster.log("ec2-api").suffix(800))")
        let webID = try #require((created[0]["result"] as? [String: Any])?["GroupId"] as? String)

        // Instances of alice's groups, as the cloud controller would start them (vnetctl, the operator's tool).
        let a1 = InstanceID("i-0000ec01")!, b1 = InstanceID("i-0000ec02")!
        for (id, node, group) in [(a1, "n1", "web"), (b1, "n2", "db")] {
            let vif = try cluster.makeInstance(id, on: node)
            _ = try cluster.vnetctl(["run-instance", "--id", id.description, "--node", node, "--user", "alice", "--group", group, "--vif", vif, "--wait"])
        }
        let addressA1 = try cluster.dhcp(a1), addressB1 = try cluster.dhcp(b1)
        #expect(!addressA1.isEmpty && !addressB1.isEmpty)
        #expect(!cluster.ping(from: a1, addressB1), "db admits nothing yet")

        // icmp into db from group web (UserIdGroupPairs by GroupId), with awscli.
        let icmp = aws(["authorize-security-group-ingress", "--group-name", "db", "--ip-permissions",
                        "IpProtocol=icmp,FromPort=-1,ToPort=-1,UserIdGroupPairs=[{GroupId=\(webID)}]"])
        #expect(icmp.ok, "\(icmp.text)")
        #expect(eventually { cluster.ping(from: a1, addressB1) }, "web reaches db once db authorizes icmp from web")

        // A public address for a1, and tcp 22 into web from the outside's network.
        // Killed here (SIGKILL): started by Foundation's Process it inherits a mask that holds SIGTERM, which the
        // cluster's own clean-up sends.
        let listener = try NamespaceFixtures.launchTool(["/usr/bin/python3", "-m", "http.server", "22", "--bind", "0.0.0.0"],
                                                        in: cluster.instances[a1.description]!, log: "\(cluster.directory)/a1-listener.log")
        defer { kill(listener.processIdentifier, SIGKILL); listener.waitUntilExit() }
        let address = try boto3([["op": "allocate_address"]])
        let publicIP = try #require((address.first?["result"] as? [String: Any])?["PublicIp"] as? String, "\(address)")
        let associated = aws(["associate-address", "--instance-id", a1.description, "--public-ip", publicIP])
        #expect(associated.ok, "\(associated.text)")
        #expect(!eventually(3) { tcpConnect(from: cluster.outside, publicIP, 22) }, "web does not admit tcp 22 yet")
        #expect(codes(try boto3([["op": "authorize_security_group_ingress", "args": ["GroupId": webID, "IpPermissions": [
            ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "203.0.113.0/24"]]]]]]])) == ["ok"])
        #expect(eventually { tcpConnect(from: cluster.outside, publicIP, 22) }, "the outside reaches a1's port 22 through \(publicIP)")
        let instances = try boto3([["op": "describe_instances", "args": ["InstanceIds": [a1.description]]]])
        let described = ((instances.first?["result"] as? [String: Any])?["Reservations"] as? [[String: Any]])?.first?["Instances"] as? [[String: Any]]
        #expect(described?.first?["PrivateIpAddress"] as? String == addressA1 && described?.first?["PublicIpAddress"] as? String == publicIP, "\(instances)")

        // Refusals from real client calls, with the cluster's own state behind them.
        let refusals = try boto3([
            ["op": "delete_security_group", "args": ["GroupName": "web"]],
            ["op": "associate_address", "args": ["PublicIp": publicIP, "InstanceId": "i-0000dead"]],
            ["op": "authorize_security_group_ingress", "args": ["GroupId": webID, "IpPermissions": [
                ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "203.0.113.0/24"]]]]]],
            ["op": "release_address", "args": ["PublicIp": publicIP]],
        ])
        #expect(codes(refusals) == ["DependencyViolation", "InvalidInstanceID.NotFound", "InvalidPermission.Duplicate", "InvalidIPAddress.InUse"], "\(refusals)")

        // Revoked: denied again. Disassociated and released: the public address leads nowhere.
        #expect(codes(try boto3([["op": "revoke_security_group_ingress", "args": ["GroupId": webID, "IpPermissions": [
            ["IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [["CidrIp": "203.0.113.0/24"]]]]]]])) == ["ok"])
        #expect(eventually { !tcpConnect(from: cluster.outside, publicIP, 22) }, "tcp 22 denied after revoke")
        #expect(codes(try boto3([["op": "authorize_security_group_ingress", "args": ["GroupId": webID, "IpPermissions": [
            ["IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [["CidrIp": "203.0.113.0/24"]]]]]]])) == ["ok"])
        #expect(eventually { cluster.pingCount(cluster.outside, publicIP, count: 1).1 == 1 }, "the outside pings a1 at \(publicIP)")
        #expect(aws(["disassociate-address", "--public-ip", publicIP]).ok)
        #expect(eventually { cluster.pingCount(cluster.outside, publicIP, count: 1).1 == 0 }, "\(publicIP) leads nowhere once disassociated")
        #expect(aws(["release-address", "--public-ip", publicIP]).ok)
        #expect(codes(try boto3([["op": "describe_addresses"]])) == ["ok"])
        #expect(try cluster.vnetctl(["describe-addresses"]).contains(publicIP) == false)
    }
}
