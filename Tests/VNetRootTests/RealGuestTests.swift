import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// Real VM guests on the taps the agent makes (run-instance without --vif), next to namespace instances on
/// hypervisor-made vifs (veths): a guest gets its address from the project's dhcpd, reaches its router, answers
/// ping, and is isolated and reachable as its group's rules say. A tap carrying the guest's own MAC (as the
/// agent made them before) loses every unicast frame meant for the guest in the node's bridge: the DHCP offer
/// first, so such a guest never becomes ready.
@Suite("real VM guests on the agent's taps", .enabled(if: RootLane.enabled && !VLANLane.inVM, RootLane.reason), .serialized)
struct RealGuestTests {
    struct Instance: Decodable { var id: String; var ip: String?; var mac: String }

    static func figure(_ text: String) { FileHandle.standardError.write(Data("real-guest: \(text)\n".utf8)) }

    @Test func aGuestOnAnAgentsTapInManagedNoVLANFollowsItsGroupsRules() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["create-group", "--group", "db"])
        let guestID = InstanceID("i-0000c001")!, a2 = InstanceID("i-0000c002")!, b1 = InstanceID("i-0000c003")!
        // The guest's instance: no --vif, so n1's agent makes the tap vn-0000c001 in br0.
        _ = try cluster.vnetctl(["run-instance", "--id", guestID.description, "--node", "n1", "--group", "web", "--wait", "--wait-timeout", "10"])
        let tap = "vn-" + guestID.hexDigits, mac = MACPrefix.eucalyptusDefault.mac(for: guestID)
        let link = try #require(try cluster.links(cluster.nodes["n1"]!)[tap])
        #expect(link.kind == "tun" && link.master == "br0" && link.mac == mac.tapHostSide, "\(link)")
        let guest = try GuestVM(in: cluster.nodes["n1"]!, tap: tap, mac: mac, directory: cluster.directory)
        for (id, node, group) in [(a2, "n2", "web"), (b1, "n2", "db")] { try cluster.launchInstance(id, on: node, group: group) }
        let addressA2 = try cluster.dhcp(a2), addressB1 = try cluster.dhcp(b1)

        let lines = try guest.waitUntilReady()
        Self.figure("MANAGED-NOVLAN guest ready (boot + DHCP) after \(String(format: "%.1f", guest.readyAfter ?? 0)) s")
        let lease = try #require(guest.lease, "\(lines)")
        let instances = try JSONDecoder().decode([Instance].self, from: Data(try cluster.vnetctl(["describe-instances", "--json"]).utf8))
        #expect(lease.address == instances.first { $0.id == guestID.description }?.ip, "the lease is the address the coordinator gave it: \(lines)")
        #expect(lease.router == "10.20.2.1" && lines.contains("vnet-guest: router 10.20.2.1 answers"), "\(lines)")

        #expect(cluster.ping(from: a2, lease.address), "same group, another node: the guest answers")
        #expect(!cluster.ping(from: b1, lease.address), "another group: not before authorize")
        _ = try cluster.vnetctl(["authorize", "--group", "web", "--protocol", "icmp", "--source-group", "db", "--wait"])
        #expect(cluster.ping(from: b1, lease.address), "reachable once web authorizes icmp from db")
        _ = try cluster.vnetctl(["revoke", "--group", "web", "--protocol", "icmp", "--source-group", "db", "--wait"])
        #expect(!cluster.ping(from: b1, lease.address), "not after revoke")

        // Its public IP from the outside host.
        _ = try cluster.vnetctl(["authorize", "--group", "web", "--protocol", "icmp", "--source-cidr", "0.0.0.0/0", "--wait"])
        _ = try cluster.vnetctl(["allocate-address", "--address", "203.0.113.11"])
        _ = try cluster.vnetctl(["associate-address", "--address", "203.0.113.11", "--instance", guestID.description, "--wait"])
        #expect(cluster.pingCount(cluster.outside, "203.0.113.11", count: 2).1 >= 1, "the outside reaches the guest by its public IP")
        // The hypervisor-made vifs (veths) beside it work as before.
        #expect(cluster.ping(from: a2, addressA2) && addressB1 == "10.20.2.66")

        // Terminated: its tap goes (the guest's NIC loses its backend), the others stay.
        _ = try cluster.vnetctl(["terminate-instance", "--id", guestID.description, "--wait"])
        #expect(try cluster.links(cluster.nodes["n1"]!)[tap] == nil)
        #expect(!cluster.ping(from: a2, lease.address))
    }

    @Test func aGuestOnAnAgentsTapInStaticGetsItsMappedAddress() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1"], frontendConfig: StaticClusterTests.frontendConfig,
                                           nodeConfig: "VNET_MODE=\"STATIC\"\nVNET_BRIDGE=\"br0\"\n")
        try cluster.sh(cluster.frontEnd, "ip address add 10.30.1.254/24 dev eth0")
        try cluster.startDaemons()
        let guestID = InstanceID("i-00005101")!, other = InstanceID("i-00005102")!
        let started = try StaticClusterTests.started(try cluster.vnetctl(["run-instance", "--id", guestID.description, "--node", "n1", "--wait", "--json"]))
        let mac = try #require(MACAddress(started.mac))
        let tap = "vn-" + guestID.hexDigits
        #expect(try cluster.links(cluster.nodes["n1"]!)[tap]?.mac == mac.tapHostSide)
        // The hypervisor starts the VM with the MAC the cluster controller chose (VNET_MACMAP).
        let guest = try GuestVM(in: cluster.nodes["n1"]!, tap: tap, mac: mac, directory: cluster.directory)
        let vif = try cluster.makeInstance(other, on: "n1")
        let second = try StaticClusterTests.started(try cluster.vnetctl(["run-instance", "--id", other.description, "--node", "n1", "--vif", vif, "--wait", "--json"]))
        try cluster.setMAC(other, try #require(MACAddress(second.mac)))
        #expect(try cluster.dhcp(other) == second.ip)

        let lines = try guest.waitUntilReady()
        Self.figure("STATIC guest ready (boot + DHCP) after \(String(format: "%.1f", guest.readyAfter ?? 0)) s")
        #expect(guest.lease?.address == started.ip && started.ip == "10.30.1.5", "\(lines)")
        #expect(lines.contains("vnet-guest: router 10.30.1.254 answers"), "\(lines)")
        #expect(cluster.ping(from: other, "10.30.1.5"), "a veth instance on the same bridge reaches the guest")
        #expect(cluster.pingCount(cluster.frontEnd, "10.30.1.5", count: 1).1 == 1, "so does the front end")
    }

    /// libvirt's QEMU driver on the agent's tap, with the README's `<interface type='ethernet'>` XML.
    @Test func aGuestStartedByLibvirtOnAnAgentsTap() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1"])
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        let guestID = InstanceID("i-0000c101")!, other = InstanceID("i-0000c102")!
        _ = try cluster.vnetctl(["run-instance", "--id", guestID.description, "--node", "n1", "--group", "web", "--wait", "--wait-timeout", "10"])
        let tap = "vn-" + guestID.hexDigits
        let before = try #require(try cluster.links(cluster.nodes["n1"]!)[tap])
        let guest = try LibvirtGuest(in: cluster.nodes["n1"]!, tap: tap, mac: MACPrefix.eucalyptusDefault.mac(for: guestID),
                                     name: guestID.description, directory: cluster.directory)
        try cluster.launchInstance(other, on: "n1", group: "web")
        #expect(try cluster.dhcp(other) == "10.20.2.3")
        let lines = try guest.waitUntilReady(log: "\(cluster.directory)/libvirt-\(guestID).log")
        #expect(lines.contains("vnet-guest: bound 10.20.2.2/26 router 10.20.2.1") && lines.contains("vnet-guest: router 10.20.2.1 answers"), "\(lines)")
        #expect(cluster.ping(from: other, "10.20.2.2"), "the libvirt guest answers on its group's network")
        let after = try #require(try cluster.links(cluster.nodes["n1"]!)[tap])
        #expect(after.index == before.index && after.mac == before.mac && after.master == "br0", "libvirt used the tap as it was: \(after)")
    }
}
