import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// STATIC end to end on real kernel objects: instances started with `run-instance` take the first free
/// VNET_MACMAP pair, the hypervisor gives the vif that MAC, and the project's dhcpd on the front end hands out
/// exactly the mapped address to a real dhclient. With every pair taken, `run-instance` fails with a clear
/// error and changes nothing; a terminated instance's pair is free again.
@Suite("STATIC cluster in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct StaticClusterTests {
    static let frontendConfig = """
        VNET_MODE="STATIC"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="10.30.1.0"
        VNET_NETMASK="255.255.255.0"
        VNET_BROADCAST="10.30.1.255"
        VNET_ROUTER="10.30.1.254"
        VNET_DNS="192.0.2.53"
        VNET_MACMAP="d0:0d:00:00:01:05=10.30.1.5 d0:0d:00:00:01:07=10.30.1.7"

        """

    struct Started: Decodable { var id: String; var ip: String?; var mac: String }
    struct Change: Decodable { var instances: [Started] }
    static func started(_ json: String) throws -> Started { try #require(try JSONDecoder().decode(Change.self, from: Data(json.utf8)).instances.first) }

    @Test func instancesGetTheirMappedAddressesAndRunInstanceFailsWhenNoPairIsLeft() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"], frontendConfig: Self.frontendConfig,
                                           nodeConfig: "VNET_MODE=\"STATIC\"\nVNET_BRIDGE=\"br0\"\n")
        // The front end sits on the instances' LAN (as Eucalyptus' STATIC assumes): dhcpd serves on eth0.
        try cluster.sh(cluster.frontEnd, "ip address add 10.30.1.254/24 dev eth0")
        try cluster.startDaemons()

        func run(_ id: InstanceID, on node: String) throws -> Started {
            let vif = try cluster.makeInstance(id, on: node)
            let output = try cluster.vnetctl(["run-instance", "--id", id.description, "--node", node, "--vif", vif, "--wait", "--wait-timeout", "10", "--json"])
            let started = try Self.started(output)
            // The hypervisor starts the VM with the MAC the cluster controller chose.
            try cluster.setMAC(id, try #require(MACAddress(started.mac)))
            return started
        }
        let first = InstanceID("i-00005001")!, second = InstanceID("i-00005002")!, third = InstanceID("i-00005003")!
        let one = try run(first, on: "n1"), two = try run(second, on: "n2")
        #expect((one.mac, one.ip) == ("d0:0d:00:00:01:05", "10.30.1.5"))
        #expect((two.mac, two.ip) == ("d0:0d:00:00:01:07", "10.30.1.7"))
        #expect(try cluster.dhcp(first) == "10.30.1.5", "\(cluster.log("fe-agent").suffix(1500))")
        #expect(try cluster.dhcp(second) == "10.30.1.7")
        #expect(cluster.ping(from: first, "10.30.1.7"), "STATIC instances share one LAN across nodes")

        // No pair left: a clear error, exit status 1 (refused), and nothing changed.
        let before = try cluster.vnetctl(["describe-instances", "--json"])
        let vif = try cluster.makeInstance(third, on: "n1")
        do {
            _ = try cluster.vnetctl(["run-instance", "--id", third.description, "--node", "n1", "--vif", vif])
            Issue.record("run-instance succeeded with every VNET_MACMAP pair taken")
        } catch let error as CommandError {
            #expect(error.status == 1)
            #expect(error.stderr.contains("no free VNET_MACMAP pair: all 2 are held by running instances"), "\(error.stderr)")
        }
        #expect(try cluster.vnetctl(["describe-instances", "--json"]) == before)

        // A terminated instance's pair is the next one given out.
        _ = try cluster.vnetctl(["terminate-instance", "--id", first.description, "--wait"])
        let again = try cluster.vnetctl(["run-instance", "--id", third.description, "--node", "n1", "--vif", vif, "--wait", "--json"])
        let three = try Self.started(again)
        #expect((three.mac, three.ip) == ("d0:0d:00:00:01:05", "10.30.1.5"))
        try cluster.setMAC(third, try #require(MACAddress(three.mac)))
        #expect(try cluster.dhcp(third) == "10.30.1.5")
        #expect(cluster.ping(from: third, "10.30.1.7"))
    }
}
