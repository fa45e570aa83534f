import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// The switch port of every host, as Debian's lldpd announces it from the switch namespace (one lldpd, every
/// port; system name sw1, port IDs Eth1/1.., n3's port announcing VLAN 10 and a maximum frame size of 1518 as
/// 802.1 and 802.3 TLVs): each agent hears its port and reports it, `nodes --detail` shows it, `verify-vlan`
/// names a culprit by it and compares what the port announces with what was measured; a port gone silent
/// expires with its TTL.
@Suite("LLDP: the switch port of every host", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct LLDPClusterTests {
    struct Node: Decodable {
        struct Port: Decodable { var label: String; var interface: String; var vlans: [Int]; var maxFrameSize: Int?; var portDescription: String? }
        var id: String
        var switchPorts: [Port]?
    }

    func ports(_ cluster: NamespaceCluster) -> [String: [Node.Port]] {
        let nodes = (try? JSONDecoder().decode([Node].self, from: Data(((try? cluster.vnetctl(["nodes", "--detail", "--json"])) ?? "").utf8))) ?? []
        return Dictionary(nodes.map { ($0.id, $0.switchPorts ?? []) }, uniquingKeysWith: { a, _ in a })
    }

    @Test func everyHostHearsItsPortAndCulpritsAreNamedByIt() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2", "n3"])
        let hosts = ["fe", "n1", "n2", "n3"]
        let socket = "\(cluster.directory)/lldpd.sock"
        var config = "configure system hostname sw1\nconfigure lldp tx-interval 1\n"
        for (index, host) in hosts.enumerated() {
            config += "configure ports p-\(host) lldp portidsubtype local Eth1/\(index + 1)\n"
            config += "configure ports p-\(host) lldp portdescription \"to \(host)\"\n"
        }
        // n3's port says it carries VLAN 10 ("web") and takes frames of up to 1518 bytes.
        config += "configure ports p-n3 lldp custom-tlv oui 00,80,c2 subtype 3 oui-info 00,0a,03,77,65,62\n"
        config += "configure ports p-n3 lldp custom-tlv add oui 00,12,0f subtype 4 oui-info 05,ee\n"
        try config.write(toFile: "\(cluster.directory)/lldpd.conf", atomically: true, encoding: .utf8)
        let lldpd = try NamespaceFixtures.launchTool(["/usr/sbin/lldpd", "-d", "-k", "-u", socket, "-I", hosts.map { "p-\($0)" }.joined(separator: ","),
                                                      "-O", "\(cluster.directory)/lldpd.conf"],
                                                     in: cluster.switchNS, log: "\(cluster.directory)/lldpd.log")
        // lldpd forks (a privilege-separated monitor and worker), and a process started by Foundation ignores
        // SIGTERM (an inherited signal mask): every process in the switch namespace is killed, as it is only lldpd.
        func stopLLDPD() {
            let pids = (try? cluster.runner(cluster.switchNS).run(["ip", "netns", "pids", cluster.switchNS.name], input: nil)) ?? []
            for pid in String(decoding: pids, as: UTF8.self).split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            kill(lldpd.processIdentifier, SIGKILL)
            lldpd.waitUntilExit()
        }
        defer { stopLLDPD() }
        try cluster.startDaemons()

        // Each agent reports its port as soon as it hears it (not at the next 10 s inventory).
        var heard: [String: [Node.Port]] = [:]
        #expect(FaultInjectionTests.waitUntil(15, "every host reports its switch port") {
            heard = ports(cluster)
            return hosts.allSatisfy { heard[$0]?.count == 1 }
        }, "\(heard)\n\(cluster.log("lldpd").suffix(800))")
        for (index, host) in hosts.enumerated() {
            let port = heard[host]?.first
            #expect(port?.label == "sw1 Eth1/\(index + 1)" && port?.interface == "eth0" && port?.portDescription == "to \(host)", "\(host): \(String(describing: port))")
        }
        #expect(heard["n3"]?.first?.vlans == [10] && heard["n3"]?.first?.maxFrameSize == 1518, "802.1 VLAN and 802.3 frame size: \(String(describing: heard["n3"]))")
        let text = try cluster.vnetctl(["nodes", "--detail", "n3"])
        #expect(text.contains("switch port: sw1 Eth1/4 on eth0 (chassis ") && text.contains("VLANs 10, max frame 1518"), "\(text)")

        // VID 20 dropped on n3's port, which announces only VLAN 10: the culprit is named by its port, and the
        // announcement agrees with the measurement.
        try cluster.sh(cluster.switchNS, "nft add table bridge vnettest")
        try cluster.sh(cluster.switchNS, "nft add chain bridge vnettest portfilter { type filter hook forward priority 0 ; }")
        for direction in ["iifname", "oifname"] {
            _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter \(direction) p-n3 vlan id 20 drop"], input: nil)
        }
        let (status, output) = try cluster.vnetctlStatus(["verify-vlan", "--vlans", "10,20", "--probe-time", "2"])
        #expect(status == 1)
        #expect(output.contains("conclusion: VID 20: n3 (sw1 Eth1/4) fails with every other host"), "\(output)")
        #expect(output.contains("sw1 Eth1/4 announces VLANs 10 (LLDP), not 20: the switch's configuration says the same"), "\(output)")
        #expect(output.contains("switch ports (LLDP): fe sw1 Eth1/1, n1 sw1 Eth1/2, n2 sw1 Eth1/3, n3 sw1 Eth1/4"), "\(output)")

        // lldpd gone (killed: no shutdown frame): every port expires with its TTL (4 s: lldpd's TTL is four
        // transmit intervals), and the agents say so at once.
        stopLLDPD()
        #expect(FaultInjectionTests.waitUntil(15, "the switch ports expire") {
            heard = ports(cluster)
            return hosts.allSatisfy { heard[$0]?.isEmpty == true }
        }, "\(heard)")
    }
}
