import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// SYSTEM end to end on real kernel objects: the project manages no addresses; a DHCP server outside the
/// project (ISC dhcpd run by the test on the switch, as the site's own would be) gives instances their
/// addresses; each node's agent learns them from the acknowledgements it sees and the coordinator shows them.
@Suite("SYSTEM cluster in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct SystemClusterTests {
    struct Instance: Decodable { var id: String; var ip: String?; var ipLearned: Bool? }

    @Test func anOutsideDHCPServerGivesTheAddressAndTheNodeReportsWhatItLearned() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"], frontendConfig: "VNET_MODE=\"SYSTEM\"\n",
                                           nodeConfig: "VNET_MODE=\"SYSTEM\"\nVNET_BRIDGE=\"br0\"\n")
        // The site's DHCP server, on the switch; nothing of the project configures it.
        try cluster.sh(cluster.switchNS, "ip address add 10.40.0.1/24 dev sw")
        let conf = "\(cluster.directory)/site-dhcpd.conf", leases = "\(cluster.directory)/site-dhcpd.leases"
        try """
            authoritative;
            default-lease-time 600;
            max-lease-time 600;
            subnet 10.40.0.0 netmask 255.255.255.0 {
              range 10.40.0.100 10.40.0.150;
              option routers 10.40.0.1;
            }

            """.write(toFile: conf, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: leases, contents: nil)
        _ = try cluster.runner(cluster.switchNS).run(["/usr/sbin/dhcpd", "-4", "-q", "-cf", conf, "-lf", leases,
                                                      "-pf", "\(cluster.directory)/site-dhcpd.pid", "sw"], input: nil)
        try cluster.startDaemons()

        func describe() throws -> [String: Instance] {
            let list = try JSONDecoder().decode([Instance].self, from: Data(try cluster.vnetctl(["describe-instances", "--json"]).utf8))
            return Dictionary(uniqueKeysWithValues: list.map { ($0.id, $0) })
        }
        let first = InstanceID("i-0000c001")!, second = InstanceID("i-0000c002")!
        var given: [InstanceID: String] = [:]
        for (id, node) in [(first, "n1"), (second, "n2")] {
            let vif = try cluster.makeInstance(id, on: node)
            _ = try cluster.vnetctl(["run-instance", "--id", id.description, "--node", node, "--vif", vif, "--wait", "--wait-timeout", "10"])
            #expect(try describe()[id.description]?.ip == nil, "nothing known before the VM asked for an address")
            let address = try cluster.dhcp(id)
            #expect(address.hasPrefix("10.40.0.") && IPv4Address(address).map { (100...150).contains(Int($0.value & 0xff)) } == true,
                    "from the site's range: \(address)")
            given[id] = address
        }
        #expect(cluster.ping(from: first, try #require(given[second])), "both instances are on the site's LAN")

        // The nodes saw the acknowledgements and reported them.
        let deadline = Date().addingTimeInterval(5)
        var seen = try describe()
        while Date() < deadline, seen.values.contains(where: { $0.ip == nil }) {
            Thread.sleep(forTimeInterval: 0.1)
            seen = try describe()
        }
        for id in [first, second] {
            #expect(seen[id.description]?.ip == given[id], "\(id): \(String(describing: seen[id.description]))\n\(cluster.log("n1-agent").suffix(800))")
            #expect(seen[id.description]?.ipLearned == true)
        }
        let table = try cluster.vnetctl(["describe-instances"])
        #expect(table.contains("\(given[first]!) (learned)"), "\(table)")

        // A terminated instance is no longer described; the other keeps its learned address.
        _ = try cluster.vnetctl(["terminate-instance", "--id", second.description, "--wait"])
        #expect(try describe()[second.description] == nil)
        #expect(try describe()[first.description]?.ip == given[first], "the other instance's address stays known")
    }
}
