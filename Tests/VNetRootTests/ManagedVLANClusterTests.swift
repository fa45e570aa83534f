import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// Where real 802.1Q devices exist: inside the VM of lane 3 (`Tests/vm-lane.sh`, which sets VNET_VM_LANE=1). This
/// machine's own kernel has none, so on the host these suites are off and `VMLaneTests` runs them in the VM.
enum VLANLane {
    static let inVM = ProcessInfo.processInfo.environment["VNET_VM_LANE"] == "1"
    static let reason: Comment = "needs 802.1Q VLAN devices: runs inside the VM lane (VMLaneTests, Tests/vm-lane.sh)"
}

/// MANAGED end to end with real 802.1Q: the front end carries `eth0.<vlan>` devices with the groups' router
/// addresses and dhcpd serving on them; nodes have `eucabr<vlan>` over `eth0.<vlan>`; the switch between them is
/// a plain bridge (it forwards tagged frames untouched).
@Suite("MANAGED cluster with 802.1Q (VM lane)", .enabled(if: VLANLane.inVM, VLANLane.reason), .serialized)
struct ManagedVLANClusterTests {
    static let frontendConfig = """
        VNET_MODE="MANAGED"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="10.20.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="192.0.2.53"
        VNET_ADDRSPERNET="64"
        VNET_PUBLICIPS="203.0.113.10-203.0.113.12"
        VNET_CLOUDIP="203.0.113.100"

        """

    struct Group: Decodable { var name: String; var vlan: Int? }

    @Test func groupsGetTheirOwnVLANsEndToEnd() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"], frontendConfig: Self.frontendConfig,
                                           nodeConfig: "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\n", nodeBridges: false)
        func step(_ what: String) { FileHandle.standardError.write(Data("managed-vlan: \(Date()) \(what)\n".utf8)) }
        // The diagnosis at the end looks at things broken by hand; a reconcile must not repair them first.
        cluster.agentArguments = ["--reconcile-interval", "0"]
        // The hypervisor's own VLAN (storage, say): a device of the same `<iface>.<vid>` shape, with an address.
        // vnet never made it, so it survives everything below.
        try cluster.sh(cluster.nodes["n1"]!, "ip link add link eth0 name eth0.100 type vlan id 100")
        try cluster.sh(cluster.nodes["n1"]!, "ip address add 192.0.2.77/24 dev eth0.100")
        try cluster.sh(cluster.nodes["n1"]!, "ip link set eth0.100 up")
        let operatorsVLAN = try cluster.links(cluster.nodes["n1"]!)["eth0.100"]?.index
        try cluster.startDaemons()
        step("cluster up")
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["create-group", "--group", "db"])
        let groups = try JSONDecoder().decode([Group].self, from: Data(try cluster.vnetctl(["describe-groups", "--json"]).utf8))
        let webVLAN = try #require(groups.first { $0.name == "web" }?.vlan), dbVLAN = try #require(groups.first { $0.name == "db" }?.vlan)
        #expect(webVLAN != dbVLAN)

        let a1 = InstanceID("i-0000d001")!, a2 = InstanceID("i-0000d002")!, b1 = InstanceID("i-0000d003")!, b2 = InstanceID("i-0000d004")!
        for (id, node, group) in [(a1, "n1", "web"), (a2, "n2", "web"), (b1, "n1", "db"), (b2, "n2", "db")] { try cluster.launchInstance(id, on: node, group: group) }
        let links = cluster.links
        step("instances running")
        // The kernel objects MANAGED stands on.
        let fe = try links(cluster.frontEnd)
        #expect(fe["eth0.\(webVLAN)"]?.vlanID == webVLAN && fe["eth0.\(dbVLAN)"]?.vlanID == dbVLAN, "the front end's 802.1Q devices")
        for node in ["n1", "n2"] {
            let host = try links(cluster.nodes[node]!)
            for vlan in [webVLAN, dbVLAN] {
                #expect(host["eth0.\(vlan)"]?.kind == "vlan" && host["eth0.\(vlan)"]?.master == "eucabr\(vlan)", "\(node): eth0.\(vlan) in eucabr\(vlan)")
            }
        }
        step("kernel objects checked")
        // DHCP on each group's VLAN, from the front end's dhcpd on eth0.<vlan>.
        let addressA1 = try cluster.dhcp(a1), addressA2 = try cluster.dhcp(a2), addressB1 = try cluster.dhcp(b1), addressB2 = try cluster.dhcp(b2)
        #expect([addressA1, addressA2, addressB1, addressB2] == ["10.20.2.2", "10.20.2.3", "10.20.2.66", "10.20.2.67"],
                "\(addressA1) \(addressA2) \(addressB1) \(addressB2)\n\(cluster.log("fe-agent").suffix(1500))")
        #expect(cluster.ping(from: a1, addressA2), "same group, two nodes, over the VLAN")
        #expect(cluster.ping(from: b2, addressB1))

        step("DHCP and pings done")
        // Layer 2: a capture on web's bridge on n1 while db's instances talk never sees db's frames.
        let macB1 = MACPrefix.eucalyptusDefault.mac(for: b1), macB2 = MACPrefix.eucalyptusDefault.mac(for: b2)
        let captureFile = "\(cluster.directory)/capture.txt"
        let filter = "ether host \(macB1) or ether host \(macB2) or ether host \(MACPrefix.eucalyptusDefault.mac(for: a1))"
        let capture = try cluster.runner(cluster.nodes["n1"]!).start(
            ["timeout", "5", "tcpdump", "-l", "-n", "-e", "-i", "eucabr\(webVLAN)", filter], output: captureFile)
        Thread.sleep(forTimeInterval: 1)
        #expect(cluster.pingCount(cluster.instances[b1.description]!, addressB2, count: 5, interval: "0.2").1 == 5)
        #expect(cluster.pingCount(cluster.instances[a1.description]!, addressA2, count: 2, interval: "0.2").1 == 2)
        var status: Int32 = 0
        waitpid(capture, &status, 0)
        let frames = ((try? String(contentsOfFile: captureFile, encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(!frames.contains { $0.contains(macB1.description) || $0.contains(macB2.description) }, "db's frames on web's bridge: \(frames.prefix(3))")
        #expect(frames.contains { $0.contains(MACPrefix.eucalyptusDefault.mac(for: a1).description) }, "the capture works: web's own frames are seen")

        step("layer 2 checked")
        // Layer 3: routed through the front end, only as the rules allow.
        #expect(!cluster.ping(from: a1, addressB1), "another group: not reachable before authorize")
        _ = try cluster.vnetctl(["authorize", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(cluster.ping(from: a1, addressB1), "reachable once db authorizes icmp from web")
        _ = try cluster.vnetctl(["revoke", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(!cluster.ping(from: a1, addressB1), "not after revoke")

        step("layer 3 checked")
        // A public IP, as in MANAGED-NOVLAN; the outside answers only 203.0.113.10, so a reply proves the SNAT.
        _ = try cluster.vnetctl(["authorize", "--group", "web", "--protocol", "icmp", "--source-cidr", "0.0.0.0/0", "--wait"])
        try cluster.sh(cluster.outside, "iptables -w -A INPUT -p icmp --icmp-type echo-request ! -s 203.0.113.10 -j DROP")
        _ = try cluster.vnetctl(["allocate-address", "--address", "203.0.113.10"])
        _ = try cluster.vnetctl(["associate-address", "--address", "203.0.113.10", "--instance", a1.description, "--wait"])
        #expect(cluster.pingCount(cluster.outside, "203.0.113.10", count: 1).1 == 1, "the outside reaches the instance by its public IP")
        #expect(cluster.ping(from: a1, "203.0.113.100"), "and the instance leaves with it as source")
        _ = try cluster.vnetctl(["disassociate-address", "--address", "203.0.113.10", "--wait"])
        #expect(cluster.pingCount(cluster.outside, "203.0.113.10", count: 1).1 == 0, "not after disassociate-address")

        step("public IP checked")
        // Metadata: 169.254.169.254:80 from an instance lands on VNET_CLOUDIP:8773 (the outside host here).
        let web = "\(cluster.directory)/metadata"
        try FileManager.default.createDirectory(atPath: web, withIntermediateDirectories: true)
        try "instance-id\n".write(toFile: "\(web)/latest", atomically: true, encoding: .utf8)
        let server = try cluster.runner(cluster.outside).start(["python3", "-m", "http.server", "--bind", "203.0.113.100", "--directory", web, "8773"])
        defer { kill(server, SIGTERM); var status: Int32 = 0; waitpid(server, &status, 0) }
        var answer = ""
        for _ in 0..<50 where !answer.contains("200") {
            answer = (try? String(decoding: cluster.runner(cluster.instances[a2.description]!).run(
                ["bash", "-c", "exec 3<>/dev/tcp/169.254.169.254/80 && printf 'GET /latest HTTP/1.0\\r\\n\\r\\n' >&3 && timeout 2 cat <&3"], input: nil), as: UTF8.self)) ?? ""
            if !answer.contains("200") { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(answer.contains("HTTP/1.0 200") && answer.contains("instance-id"), "metadata: \(answer.prefix(200))")

        step("metadata checked")
        // The last db instance on n1 terminated: n1's eucabr<db> and eth0.<db> go; nothing of web moves.
        let before = try links(cluster.nodes["n1"]!)
        _ = try cluster.vnetctl(["terminate-instance", "--id", b1.description, "--wait"])
        let after = try links(cluster.nodes["n1"]!)
        #expect(after["eucabr\(dbVLAN)"] == nil && after["eth0.\(dbVLAN)"] == nil, "n1's db bridge and VLAN device are gone")
        for name in ["eucabr\(webVLAN)", "eth0.\(webVLAN)", "vm" + a1.hexDigits] {
            #expect(after[name]?.index == before[name]?.index && after[name] != nil, "\(name) untouched")
        }
        #expect(try links(cluster.nodes["n2"]!)["eucabr\(dbVLAN)"] != nil, "n2 still has db's instance")
        #expect(after["eth0.100"]?.index == operatorsVLAN && operatorsVLAN != nil, "the operator's eth0.100 is never taken for vnet's")
        #expect(String(decoding: try cluster.runner(cluster.nodes["n1"]!).run(["ip", "-o", "address", "show", "dev", "eth0.100"], input: nil), as: UTF8.self)
            .contains("192.0.2.77/24"), "nor its address")
        #expect(cluster.ping(from: a1, addressA2))

        step("teardown checked")
        // vnetctl diagnose with 802.1Q: n2's db bridge deleted by hand and the front end's dhcpd stopped are
        // named, the dhcpd finding with the tagged interfaces and their VIDs.
        try cluster.sh(cluster.nodes["n2"]!, "ip link del eucabr\(dbVLAN)")
        try cluster.stopFrontEndDhcpd()
        let (exit, output) = try cluster.vnetctlStatus(["diagnose", "--out", "\(cluster.directory)/diagnose.tar", "--wait", "20", "--json"])
        #expect(exit == 1, "\(output)")
        let view = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        let findings = (view?["findings"] as? [[String: String]] ?? []).map { "\($0["host"] ?? ""): \($0["text"] ?? "")" }
        #expect(findings.contains("n2: bridge eucabr\(dbVLAN) is missing"), "\(findings)")
        #expect(findings.contains { $0.hasPrefix("fe: dhcpd is not running") && $0.contains("eth0.\(webVLAN) (VLAN \(webVLAN))") }, "\(findings)")
        step("diagnose checked")
    }
}
