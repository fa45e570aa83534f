import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// Host safety end to end (MANAGED-NOVLAN in namespaces, real coordinator, agents and vnetctl): one instance's
/// missing vif stays its own and `--wait` says so at once; a vif that would cut a node off is refused; the front
/// end sends no ICMP redirect that would let instances bypass the groups' rules.
@Suite("Host safety, cluster in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct HostSafetyClusterTests {
    struct Node: Decodable {
        struct Failure: Decodable { var kind: String; var object: String; var instance: String?; var error: String }
        struct Link: Decodable { var name: String; var kind: String?; var owner: String }
        var id: String; var state: String; var appliedRevision: UInt64; var failures: [Failure]; var links: [Link]?
    }
    static func nodes(_ cluster: NamespaceCluster, detail: Bool = false) -> [String: Node] {
        let text = (try? cluster.vnetctl(["nodes", "--json"] + (detail ? ["--detail"] : []))) ?? "[]"
        return Dictionary(((try? JSONDecoder().decode([Node].self, from: Data(text.utf8))) ?? []).map { ($0.id, $0) }, uniquingKeysWith: { $1 })
    }

    /// 20 instances on a node, one whose vif the hypervisor has not made: the other 19 get DHCP and reach their
    /// router; `--wait` ends at once with exit 5 naming the node, the vif and why; `vnetctl nodes` names it; when
    /// the vif appears the agent attaches it on its own, and that instance gets its address too.
    @Test func oneMissingVifAmongTwentyIsThatInstancesAlone() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1"])
        // No periodic reconcile: only the agent's retry of what failed can attach the late vif.
        cluster.agentArguments = ["--reconcile-interval", "0"]
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        let ids = (1...20).map { InstanceID(number: UInt32(0xc000 + $0)) }
        for id in ids.dropLast() { try cluster.launchInstance(id, on: "n1", group: "web") }
        let late = ids.last!, lateVif = "vm" + late.hexDigits
        let started = Date()
        let waited = try cluster.vnetctlResult(["run-instance", "--id", late.description, "--node", "n1", "--group", "web", "--vif", lateVif,
                                                "--wait", "--wait-timeout", "20"])
        let seconds = Date().timeIntervalSince(started)
        #expect(waited.status == 5, "applied except: \(waited)")
        #expect(waited.errors.contains("n1: vif \(lateVif) (\(late)): missing: not on this host"), "\(waited.errors)")
        #expect(seconds < 10, "--wait ended as soon as the failure was known, not at its timeout (\(seconds) s)")
        let node = try #require(Self.nodes(cluster)["n1"])
        #expect(node.state == "UP" && node.failures.map(\.object) == ["vif \(lateVif)"] && node.failures.first?.instance == late.description, "\(node)")
        let listing = try cluster.vnetctl(["nodes", "--detail", "n1"])
        #expect(listing.contains("vif \(lateVif) (\(late)): missing"), "\(listing)")
        // diagnose names the real cause, and its archive holds the node's inventory.
        let archive = "\(cluster.directory)/diagnose.tar"
        let diagnosis = try cluster.vnetctlResult(["diagnose", "--out", archive, "--wait", "3"])
        #expect(diagnosis.status == 1 && diagnosis.output.contains("n1 applied revision") && diagnosis.output.contains("except vif \(lateVif) (\(late)): missing"),
                "\(diagnosis)")
        let listed = try NamespaceCluster.result(of: ["tar", "-xOf", archive, "--wildcards", "*/coordinator/inventory-n1.txt"], in: cluster.frontEnd.name, directory: cluster.directory)
        #expect(listed.output.contains("vif \(lateVif) (\(late)): missing") && listed.output.contains("eth0 veth br0 up host"), "\(listed)")

        for (index, id) in ids.dropLast().enumerated() {
            let address = try cluster.dhcp(id)
            #expect(address == "10.20.2.\(index + 2)", "\(id) got \(address)")
            #expect(cluster.ping(from: id, "10.20.2.1"), "\(id) reaches its router")
        }
        // The hypervisor makes the vif: attached without anyone asking (the agent retries with back-off).
        _ = try cluster.makeInstance(late, on: "n1")
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, Self.nodes(cluster)["n1"]?.failures.isEmpty != true { Thread.sleep(forTimeInterval: 0.2) }
        #expect(Self.nodes(cluster)["n1"]?.failures.isEmpty == true)
        #expect(try cluster.links(cluster.nodes["n1"]!)[lateVif]?.master == "br0")
        #expect(try cluster.dhcp(late) == "10.20.2.21")
        let agentLog = cluster.log("n1-agent")
        #expect(agentLog.components(separatedBy: "not applied: vif \(lateVif)").count == 2, "the cause logged once, not on every retry:\n\(agentLog.suffix(2000))")
        #expect(agentLog.contains("every object of the held state is on the host now"))
    }

    /// `--vif` naming the node's uplink, its bridge, loopback or a bridge of the operator's (known from the node's
    /// inventory) is refused by the coordinator with the reason; nothing changes and the node stays UP.
    @Test func aVifThatWouldCutTheNodeOffIsRefused() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1"])
        try cluster.startDaemons()
        let n1 = cluster.nodes["n1"]!
        try cluster.sh(n1, "ip link add opbr type bridge")
        // The node reports its links in its inventories (every 10 s, and after each apply).
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, Self.nodes(cluster, detail: true)["n1"]?.links?.contains(where: { $0.name == "opbr" }) != true { Thread.sleep(forTimeInterval: 0.3) }
        let links = try #require(Self.nodes(cluster, detail: true)["n1"]?.links)
        #expect(links.first { $0.name == "eth0" }?.owner == "host" && links.contains { $0.name == "opbr" && $0.kind == "bridge" }, "\(links)")
        let revision = try cluster.vnetctl(["status", "--json"])
        for (number, vif, reason) in [(1, "eth0", "VNET_INTERFACE"), (2, "br0", "VNET_BRIDGE"), (3, "lo", "loopback"), (4, "opbr", "is a bridge on the node")] {
            let result = try cluster.vnetctlResult(["run-instance", "--id", InstanceID(number: UInt32(number)).description, "--node", "n1", "--vif", vif])
            #expect(result.status == 1 && result.errors.contains("refused") && result.errors.contains(reason), "\(vif): \(result)")
        }
        #expect(try cluster.vnetctl(["status", "--json"]) == revision, "nothing changed")
        #expect(try cluster.links(n1)["eth0"]?.master == "br0")
        #expect(Self.nodes(cluster)["n1"]?.state == "UP")
    }

    /// MANAGED-NOVLAN puts every group's network on one segment, so the front end routes web <-> db out of the
    /// interface it received on. With the kernel's defaults it then tells the instance to go direct (an ICMP
    /// redirect), and an instance that accepts redirects bypasses the front end's filter for minutes. The
    /// instances here accept them (as guests with `secure_redirects` off do); the front end must send none, and
    /// authorize/revoke must hold in both directions.
    @Test func theFrontEndSendsNoRedirectsAndGroupRulesHold() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["create-group", "--group", "db"])
        let web = InstanceID("i-0000d001")!, db = InstanceID("i-0000d002")!
        try cluster.launchInstance(web, on: "n1", group: "web")
        try cluster.launchInstance(db, on: "n2", group: "db")
        for id in [web, db] {
            for key in ["all", "eth0"] {
                try cluster.sh(cluster.instances[id.description]!, "sysctl -q -w net.ipv4.conf.\(key).accept_redirects=1 net.ipv4.conf.\(key).secure_redirects=0 net.ipv4.conf.\(key).shared_media=1")
            }
        }
        let webAddress = try cluster.dhcp(web), dbAddress = try cluster.dhcp(db)
        func redirectsSent() throws -> Int {
            let snmp = String(decoding: try cluster.runner(cluster.frontEnd).run(["cat", "/proc/net/snmp"], input: nil), as: UTF8.self)
            let lines = snmp.split(separator: "\n").filter { $0.hasPrefix("Icmp:") }
            let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
            return Int(values[names.firstIndex(of: "OutRedirects")!])!
        }
        let before = try redirectsSent()
        _ = try cluster.vnetctl(["authorize", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(cluster.pingCount(cluster.instances[web.description]!, dbAddress, count: 5, interval: "0.2").1 == 5, "web reaches db once db allows it")
        #expect(!cluster.ping(from: db, webAddress), "db -> web: web allows nothing from db")
        _ = try cluster.vnetctl(["revoke", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(!cluster.ping(from: web, dbAddress), "web -> db after revoke")
        #expect(!cluster.ping(from: db, webAddress), "db -> web after revoke")
        #expect(try redirectsSent() == before, "the front end sent ICMP redirects")
        let routes = String(decoding: try cluster.runner(cluster.instances[web.description]!).run(["ip", "route", "show", "cache"], input: nil), as: UTF8.self)
        #expect(!routes.contains("redirected"), "web took a redirect: \(routes)")
    }
}
