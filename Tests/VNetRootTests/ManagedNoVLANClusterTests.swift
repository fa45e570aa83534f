import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// MANAGED-NOVLAN end to end on real kernel objects: a switch namespace joins a front end and two nodes; the
/// real coordinator and agents (`--backend linux`) run in them; three instance namespaces hang off the nodes'
/// bridges through veths (the hypervisor's vifs), get their addresses from the project's dhcpd, and ping each
/// other as the groups' rules allow. The control plane uses a management network (10.99.0.0/24) that exists
/// only on the switch of this test.
@Suite("MANAGED-NOVLAN cluster in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct ManagedNoVLANClusterTests {
    @Test func groupsIsolateUntilAuthorizedAndDHCPGivesEveryInstanceItsAddress() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()

        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["create-group", "--group", "db"])
        let a1 = InstanceID("i-0000a001")!, a2 = InstanceID("i-0000a002")!, b1 = InstanceID("i-0000b001")!
        for (id, node, group) in [(a1, "n1", "web"), (a2, "n2", "web"), (b1, "n2", "db")] { try cluster.launchInstance(id, on: node, group: group) }
        let addressA1 = try cluster.dhcp(a1), addressA2 = try cluster.dhcp(a2), addressB1 = try cluster.dhcp(b1)
        #expect([addressA1, addressA2, addressB1] == ["10.20.2.2", "10.20.2.3", "10.20.2.66"],
                "DHCP: \(addressA1) \(addressA2) \(addressB1)\n\(cluster.log("fe-agent").suffix(1500))")

        #expect(cluster.ping(from: a1, addressA2), "same group, two nodes: reachable")
        #expect(!cluster.ping(from: a1, addressB1), "another group: not reachable before authorize")
        _ = try cluster.vnetctl(["authorize", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(cluster.ping(from: a1, addressB1), "reachable once db authorizes icmp from web")
        _ = try cluster.vnetctl(["revoke", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(!cluster.ping(from: a1, addressB1), "not reachable after revoke")

        // Public IPs. The outside answers pings only from 203.0.113.10, so a reply proves the source address.
        _ = try cluster.vnetctl(["authorize", "--group", "web", "--protocol", "icmp", "--source-cidr", "0.0.0.0/0", "--wait"])
        try cluster.sh(cluster.outside, "iptables -w -A INPUT -p icmp --icmp-type echo-request ! -s 203.0.113.10 -j DROP")
        #expect(!cluster.ping(from: a1, "203.0.113.100"), "without a public IP the instance leaves masqueraded (as 10.99.0.1), and the outside drops it")
        try cluster.sh(cluster.outside, "iptables -w -I INPUT 1 -p icmp --icmp-type echo-request -s 10.99.0.1 -j ACCEPT")
        #expect(cluster.ping(from: a1, "203.0.113.100"), "...and it did leave, masqueraded: the outside accepts the front end's address")
        try cluster.sh(cluster.outside, "iptables -w -D INPUT -p icmp --icmp-type echo-request -s 10.99.0.1 -j ACCEPT")
        _ = try cluster.vnetctl(["allocate-address", "--address", "203.0.113.10"])
        _ = try cluster.vnetctl(["associate-address", "--address", "203.0.113.10", "--instance", a1.description, "--wait"])
        #expect(cluster.pingCount(cluster.outside, "203.0.113.10", count: 1).1 == 1, "the outside reaches the instance through its public IP")
        #expect(cluster.ping(from: a1, "203.0.113.100"), "the instance's traffic leaves with its public IP as source")
        _ = try cluster.vnetctl(["disassociate-address", "--address", "203.0.113.10", "--wait"])
        #expect(cluster.pingCount(cluster.outside, "203.0.113.10", count: 1).1 == 0, "not after disassociate-address")

        // The data plane does not depend on the control plane: pings go on through an agent's kill -9 and
        // restart, and with the coordinator stopped.
        let n1Agent = cluster.processes.first { $0.arguments?.contains("n1") == true && $0.arguments?.contains("--role") == false }!
        let pings = try cluster.startPings(from: a1, to: addressA2, count: 20)
        Thread.sleep(forTimeInterval: 0.3)
        kill(n1Agent.processIdentifier, SIGKILL)
        n1Agent.waitUntilExit()
        try cluster.startNodeAgent("n1")
        let summary = pings.finish()
        #expect(summary.contains("20 packets transmitted, 20 received"), "pings lost through an agent restart: \(summary)")
        let coordinator = cluster.processes.first { $0.arguments?.contains("vnet-coordinator") == true || ($0.arguments ?? []).contains { $0.hasSuffix("vnet-coordinator") } }!
        coordinator.terminate()
        coordinator.waitUntilExit()
        #expect(cluster.pingCount(cluster.instances[a1.description]!, addressA2, count: 5, interval: "0.1") == (5, 5), "instances keep talking without the coordinator")
    }
}
