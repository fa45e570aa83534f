import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// `vnetctl diagnose` on the namespace cluster: a clean cluster has nothing to say; with a node's bridge
/// deleted by hand and the front end's dhcpd stopped, it names both, and the archive (opened with the real
/// tar) holds every host's evidence.
@Suite("vnetctl diagnose in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct DiagnoseClusterTests {
    @Test func aDeletedBridgeAndAStoppedDhcpdAreNamedAndTheArchiveHoldsTheEvidence() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"], managementPort: true)
        // No repair by the agents (a dead dhcpd is started again within a second): the test looks at what it broke.
        cluster.agentArguments = ["--reconcile-interval", "0"]
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        let id = InstanceID("i-0000d001")!
        try cluster.launchInstance(id, on: "n1", group: "web")
        #expect(try cluster.dhcp(id) == "10.20.2.2")

        let clean = try cluster.vnetctlStatus(["diagnose", "--out", "\(cluster.directory)/clean.tar"])
        #expect(clean.0 == 0, "\(clean.1)")
        #expect(clean.1.contains("3 hosts answered") && clean.1.contains("nothing looks wrong"), "\(clean.1)")

        // Break two things by hand.
        try cluster.sh(cluster.nodes["n1"]!, "ip link del br0")
        try cluster.stopFrontEndDhcpd()

        let archive = "\(cluster.directory)/broken.tar"
        let (status, output) = try cluster.vnetctlStatus(["diagnose", "--out", archive, "--json"])
        #expect(status == 1, "findings make exit status 1: \(output)")
        let view = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
        let findings = (view["findings"] as? [[String: String]] ?? []).map { "\($0["host"] ?? ""): \($0["text"] ?? "")" }
        #expect(findings.contains("n1: interface br0 is missing"), "\(findings)")
        #expect(findings.contains { $0.hasPrefix("fe: dhcpd is not running (it should serve ") }, "\(findings)")
        #expect(findings.count == 2, "nothing else is wrong: \(findings)")
        #expect((view["hosts"] as? [String])?.sorted() == ["fe", "n1", "n2"])

        // The archive, as an operator would open it.
        let unpacked = "\(cluster.directory)/unpacked"
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        _ = try ProcessRunner().run(["tar", "-x", "-f", archive, "-C", unpacked], input: nil)
        let root = try #require(try FileManager.default.contentsOfDirectory(atPath: unpacked).first)
        func read(_ path: String) -> String { (try? String(contentsOfFile: "\(unpacked)/\(root)/\(path)", encoding: .utf8)) ?? "(missing \(path))" }
        #expect(read("summary.txt").contains("n1: interface br0 is missing"))
        #expect(read("summary.txt").contains("fe: dhcpd is not running"))
        #expect(!read("hosts/n1/ip-link.txt").contains("br0"), "the node's link list is the broken one")
        #expect(read("hosts/n1/ip-link.txt").contains("mgmt0"))
        #expect(read("hosts/fe/dhcpd-state.txt").hasPrefix("stopped"))
        #expect(read("hosts/fe/dhcpd.leases").contains("server-duid"), "dhcpd's lease file is in the bundle")
        #expect(read("hosts/fe/dhcpd.conf").contains("subnet 10.20.2.0"))
        let key = try #require(FileManager.default.contents(atPath: "\(cluster.directory)/fe-agent/dhcpd/omapi.key"))
        #expect(!read("hosts/fe/dhcpd.conf").contains(Base64.encode(Array(key))) && read("hosts/fe/dhcpd.conf").contains("secret \"(removed from this copy)\""),
                "the OMAPI key stays on the host")
        #expect(read("hosts/fe/iptables-save.txt").contains(":VNET-FORWARD"))
        #expect(read("hosts/fe/ip-route.txt").contains("10.99.0.0/24"))
        #expect(read("hosts/n1/agent.log").contains("node=n1"))
        #expect(read("coordinator/nodes.txt").contains("n2 UP"))
        #expect(read("coordinator/desired-n1.txt").contains("attach"))
        #expect(read("coordinator/coordinator.log").contains("diagnosis"))

        // An existing archive is never overwritten.
        let again = try cluster.vnetctlStatus(["diagnose", "--out", archive])
        #expect(again.0 == 2, "refused as a bad command line: \(again)")

        // Without the coordinator, each host can still look at itself against what its agent last applied.
        cluster.kill9(cluster.coordinator)
        func local(_ host: String, _ namespace: ScratchNamespace) throws -> (Int32, [String]) {
            let out = "\(cluster.directory)/\(host)-local.tar"
            let result = try NamespaceCluster.result(of: [NamespaceFixtures.binaries.appendingPathComponent("vnet-agent").path, "diagnose",
                                                          "--state-dir", "\(cluster.directory)/\(host)-agent", "--out", out, "--json"],
                                                     in: namespace.name, directory: cluster.directory)
            let view = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
            #expect(FileManager.default.fileExists(atPath: out))
            return (result.status, view?["findings"] as? [String] ?? [])
        }
        let n1 = try local("n1", cluster.nodes["n1"]!)
        #expect(n1.0 == 1 && n1.1 == ["interface br0 is missing"], "\(n1)")
        let fe = try local("fe", cluster.frontEnd)
        #expect(fe.0 == 1 && fe.1.count == 1 && fe.1.first?.hasPrefix("dhcpd is not running") == true, "\(fe)")
        let n2 = try local("n2", cluster.nodes["n2"]!)
        #expect(n2.0 == 0 && n2.1.isEmpty, "\(n2)")
    }
}
