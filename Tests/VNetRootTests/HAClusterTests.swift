import Foundation
import Testing
@testable import VNetCore
import VNetTestSupport

/// Two coordinators on one PostgreSQL server, each on a host of its own, with the Linux backend on real kernel
/// objects: the MANAGED-NOVLAN namespace cluster, plus a second front-end host (`cc2`, 10.99.0.2) and a
/// database host (`db`, 10.99.0.5) on the same switch. The leader is killed while instances ping each other:
/// the data plane never notices, the standby takes over, every agent follows it without applying anything
/// again, and a change made through the new leader reaches the kernel.
@Suite("High availability in namespaces (Linux backend)", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct HAClusterTests {
    func plug(_ cluster: NamespaceCluster, _ namespace: ScratchNamespace, port: String, address: String) throws {
        try cluster.sh(cluster.switchNS, "ip link add \(port) type veth peer name eth0 netns \(namespace.name)")
        try cluster.sh(cluster.switchNS, "ip link set \(port) master sw")
        try cluster.sh(cluster.switchNS, "ip link set \(port) up")
        try cluster.sh(namespace, "ip link set lo up")
        try cluster.sh(namespace, "ip link set eth0 up")
        try cluster.sh(namespace, "ip address add \(address)/24 dev eth0")
    }

    /// The part of `text` after the last occurrence of `marker` ("" if none).
    func after(_ marker: String, in text: String) -> Substring {
        text.range(of: marker, options: .backwards).map { text[$0.upperBound...] } ?? ""
    }

    @Test func killingTheLeaderLeavesTheDataPlaneAloneAndTheStandbyServesTheKernel() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        let standbyHost = try ScratchNamespace(), databaseHost = try ScratchNamespace()
        try plug(cluster, standbyHost, port: "p-cc2", address: "10.99.0.2")
        try plug(cluster, databaseHost, port: "p-db", address: "10.99.0.5")
        let postgres = try ScratchPostgres(host: "10.99.0.5", namespace: databaseHost.name)
        defer { try? postgres.stop(mode: "immediate"); withExtendedLifetime(databaseHost) {} }
        let shared = ["--store", postgres.url, "--lease", "3"]
        cluster.coordinators = "10.99.0.1:7460,10.99.0.2:7460"
        cluster.coordinatorArguments = shared + ["--advertise", "10.99.0.1"]
        try cluster.startDaemons()
        try cluster.start(standbyHost, "coordinator2", "vnet-coordinator", ["--config", "\(cluster.directory)/fe.conf", "--state-dir", "\(cluster.directory)/coordinator2",
                                                                            "--listen", "10.99.0.2:7460", "--insecure", "--frontend", "fe", "--advertise", "10.99.0.2"] + shared)
        let standby = cluster.processes.last!
        let status = try cluster.vnetctl(["status"])
        #expect(status.contains("tcp://10.99.0.1:7462") && status.contains(" leader "), "\(status)")

        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["create-group", "--group", "db"])
        let a1 = InstanceID("i-0000a001")!, a2 = InstanceID("i-0000a002")!, b1 = InstanceID("i-0000b001")!
        for (id, node) in [(a1, "n1"), (a2, "n2")] { try cluster.launchInstance(id, on: node, group: "web") }
        let addressA1 = try cluster.dhcp(a1), addressA2 = try cluster.dhcp(a2)
        #expect(cluster.ping(from: a1, addressA2))
        try cluster.waitConverged()

        // The leader dies mid-conversation.
        let pings = try cluster.startPings(from: a1, to: addressA2, count: 60)
        Thread.sleep(forTimeInterval: 0.5)
        let killed = Date()
        cluster.kill9(cluster.coordinator)
        // Failover: from the kill until every agent says it follows the new leader.
        let followed = "following coordinator #2, leading under epoch 2"
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, !["fe-agent", "n1-agent", "n2-agent"].allSatisfy({ cluster.log($0).contains(followed) }) {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let tookOver = Date().timeIntervalSince(killed)
        #expect(tookOver < 5, "every agent followed the standby after \(tookOver) s\n\(cluster.log("coordinator2").suffix(1500))")
        let shown = try cluster.vnetctl(["status"])
        #expect(shown.contains("epoch 2, revision"), "the standby leads: \(shown)")
        #expect(shown.split(separator: "\n").contains { $0.hasPrefix("tcp://10.99.0.2:7462") && $0.contains(" leader ") }, "\(shown)")
        #expect(shown.split(separator: "\n").contains { $0.hasPrefix("tcp://10.99.0.1:7462") && $0.contains("unreachable") }, "\(shown)")
        let summary = pings.finish()
        #expect(summary.contains("60 packets transmitted, 60 received"), "pings lost through the failover: \(summary)")

        // Every agent follows the new leader, and applies nothing again.
        try cluster.waitConverged()
        for host in ["fe", "n1", "n2"] {
            let log = cluster.log(host == "fe" ? "fe-agent" : "\(host)-agent")
            #expect(log.contains("following coordinator #2, leading under epoch 2"), "\(host): \(log.suffix(1500))")
            let since = after("following coordinator #2, leading under epoch 2", in: log)
            #expect(!since.contains(" applied "), "\(host) applied again after following: \(since)")
        }

        // A change through the new leader reaches the kernel: db authorizes icmp from web, b1 gets an address.
        _ = try cluster.vnetctl(["authorize", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        try cluster.launchInstance(b1, on: "n1", group: "db")
        let addressB1 = try cluster.dhcp(b1)
        #expect(cluster.ping(from: a2, addressB1), "web reaches db through rules the new leader published")
        #expect(addressA1 != addressB1)
        #expect(standby.isRunning)
    }
}

extension NamespaceCluster {
    /// Until every host is UP at the leader with its desired revision applied.
    func waitConverged(timeout: Double = 20) throws {
        struct Node: Decodable { var state: String; var desiredRevision: UInt64; var appliedRevision: UInt64 }
        let deadline = Date().addingTimeInterval(timeout)
        var nodes: [Node] = []
        while Date() < deadline {
            nodes = (try? JSONDecoder().decode([Node].self, from: Data(((try? vnetctl(["nodes", "--json"])) ?? "").utf8))) ?? []
            if nodes.count == self.nodes.count + 1, nodes.allSatisfy({ $0.state == "UP" && $0.appliedRevision == $0.desiredRevision }) { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        Issue.record("not converged: \(nodes)")
    }
}
