import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// `vnetctl verify-vlan` as a cluster operation: the coordinator has every agent listen, then probe every other
/// host with tagged frames from its VNET_INTERFACE, gathers the reports and judges them. Real daemons in
/// namespaces; a dirty switch port emulated with nftables' bridge family.
@Suite("verify-vlan across a cluster", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct VerifyVLANClusterTests {
    struct Result: Decodable {
        struct Pair: Decodable { var a: String; var b: String; var vlan: Int; var status: String; var from: String?; var to: String? }
        var hosts: [String]; var unreachable: [String]; var pairs: [Pair]; var culprits: [String: String]
    }

    func verify(_ cluster: NamespaceCluster, _ arguments: [String]) throws -> (Int32, Result) {
        do {
            let output = try cluster.vnetctl(["verify-vlan", "--json", "--probe-time", "1.5"] + arguments)
            return (0, try JSONDecoder().decode(Result.self, from: Data(output.utf8)))
        } catch let error as CommandError {
            return (error.status, try JSONDecoder().decode(Result.self, from: Data(error.stdout.utf8)))
        }
    }

    @Test func aCleanSwitchPassesADirtyPortIsNamedADownNodeIsUnreachable() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2", "n3"])
        try cluster.startDaemons()
        var (status, result) = try verify(cluster, ["--vlans", "10,20", "--frontend"])
        #expect(status == 0 && result.hosts == ["fe", "n1", "n2", "n3"])
        #expect(result.pairs.count == 18 && result.pairs.allSatisfy { $0.status == "ok" }, "\(result.pairs.filter { $0.status != "ok" })")

        // Tagged frames dropped on n3's switch port, both ways.
        try cluster.sh(cluster.switchNS, "nft add table bridge vnettest")
        try cluster.sh(cluster.switchNS, "nft add chain bridge vnettest portfilter { type filter hook forward priority 0 ; }")
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter iifname p-n3 ether type 8021q drop"], input: nil)
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter oifname p-n3 ether type 8021q drop"], input: nil)
        (status, result) = try verify(cluster, ["--vlans", "10,20", "--frontend"])
        #expect(status == 1, "a failure exits 1")
        #expect(result.culprits == ["10": "n3", "20": "n3"])
        for pair in result.pairs where pair.vlan != 0 { #expect((pair.status == "failed") == (pair.a == "n3" || pair.b == "n3"), "\(pair)") }
        #expect(result.pairs.filter { $0.vlan == 0 }.allSatisfy { $0.status == "ok" }, "the untagged control passes")
        let text = (try? cluster.vnetctl(["verify-vlan", "--vlans", "10", "--nodes", "n1,n3", "--frontend", "--probe-time", "1.5"])) ?? ""
        #expect(text.isEmpty, "exit status 1 makes the runner throw")

        // A node whose agent is gone is unreachable, not a VLAN failure.
        _ = try cluster.runner(cluster.switchNS).run(["nft", "flush chain bridge vnettest portfilter"], input: nil)
        let n2Agent = cluster.processes.first { ($0.arguments ?? []).contains("n2") }!
        kill(n2Agent.processIdentifier, SIGKILL)
        n2Agent.waitUntilExit()
        Thread.sleep(forTimeInterval: 4)  // DOWN after three missed heartbeats
        (status, result) = try verify(cluster, ["--vlans", "10"])
        #expect(result.unreachable == ["n2"])
        #expect(result.pairs.filter { $0.a != "n2" && $0.b != "n2" }.allSatisfy { $0.status == "ok" })
        #expect(result.pairs.filter { $0.a == "n2" || $0.b == "n2" }.allSatisfy { $0.status == "unreachable" })
        #expect(result.culprits.isEmpty)
    }
}
