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
        struct MTU: Decodable {
            var expected: Int?, expectedSource: String?
            var interfaces: [MTUVerification.Interface], paths: [MTUVerification.Path], findings: [String]
        }
        var hosts: [String]; var unreachable: [String]; var pairs: [Pair]; var culprits: [String: String]; var problems: String?
        var conclusions: [String]
        var vlans: [Int]?
        var mtu: MTU?
        struct DHCP: Decodable {
            struct Server: Decodable { var vlan: Int; var mac: String; var ip: String; var seenBy: [String]; var answeredProbe: Bool; var allowed: Bool; var rogue: Bool }
            var servers: [Server]; var findings: [String]
        }
        var dhcp: DHCP?
    }

    /// A rogue DHCP server: ISC dhcpd in an "instance" namespace on `node`'s bridge, answering anyone (a range
    /// of the documentation network), as an instance running its own server would. Stopped with the returned
    /// process (and with the namespace).
    static func rogueDHCPServer(on node: ScratchNamespace, bridge: String, in cluster: NamespaceCluster, vlan: Int? = nil) throws -> (ScratchNamespace, Process, String) {
        let instance = try ScratchNamespace()
        try cluster.sh(node, "ip link add vrogue type veth peer name eth0 netns \(instance.name)")
        try cluster.sh(node, "ip link set vrogue master \(bridge)")
        try cluster.sh(node, "ip link set vrogue up")
        try cluster.sh(instance, "ip link set lo up")
        try cluster.sh(instance, "ip link set eth0 up")
        try cluster.sh(instance, "ip address add 192.0.2.1/24 dev eth0")
        let mac = try #require(try cluster.links(instance)["eth0"]?.mac?.description)
        let conf = "\(cluster.directory)/rogue-dhcpd.conf", leases = "\(cluster.directory)/rogue-dhcpd.leases"
        try "ddns-update-style none;\nsubnet 192.0.2.0 netmask 255.255.255.0 { range 192.0.2.100 192.0.2.200; }\n".write(toFile: conf, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: leases, contents: nil)
        let process = try NamespaceFixtures.launchTool(["/usr/sbin/dhcpd", "-4", "-f", "-cf", conf, "-lf", leases, "-pf", "\(cluster.directory)/rogue-dhcpd.pid", "eth0"],
                                                       in: instance, log: "\(cluster.directory)/rogue-dhcpd.log")
        return (instance, process, mac)
    }

    /// `--dhcp` on the flat network (MANAGED-NOVLAN: the untagged network is the instances'): nothing but the
    /// front end's dhcpd may answer; a second dhcpd in an instance namespace on n1's bridge is named, with the
    /// hosts that saw it, and exit 1.
    @Test func aRogueDHCPServerOnTheInstanceNetworkIsNamed() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2", "n3"])
        try cluster.startDaemons()
        var (status, result) = try verify(cluster, ["--vlans", "10", "--dhcp"], probeTime: 3)
        #expect(status == 0 && result.dhcp?.servers.isEmpty == true, "no server but the front end's (which has no instances to serve): \(String(describing: result.dhcp))")
        // The instance's namespace is held until the end (dropped, it would be deleted under dhcpd at once).
        let (instance, rogue, mac) = try Self.rogueDHCPServer(on: cluster.nodes["n1"]!, bridge: "br0", in: cluster)
        defer { withExtendedLifetime(instance) { rogue.terminate(); rogue.waitUntilExit() } }
        let deadline = Date().addingTimeInterval(10)
        func rogueLog() -> String { (try? String(contentsOfFile: "\(cluster.directory)/rogue-dhcpd.log", encoding: .utf8)) ?? "" }
        // dhcpd serves once it says so (after its sockets, its lease file and its pid file).
        while Date() < deadline, !rogueLog().contains("Server starting service") { Thread.sleep(forTimeInterval: 0.1) }
        (status, result) = try verify(cluster, ["--vlans", "10", "--dhcp"], probeTime: 4)
        let servers = try #require(result.dhcp?.servers)
        #expect(status == 1, "a rogue server exits 1")
        let found = try #require(servers.first { $0.mac == mac }, "\(servers); the rogue's log: \(rogueLog().suffix(1500))")
        #expect(found.vlan == 0 && found.rogue && !found.allowed && found.answeredProbe && found.ip == "192.0.2.1", "\(found)")
        #expect(found.seenBy == ["fe", "n2", "n3"], "every host on the wire but n1, whose own socket sees the offers leave: \(found.seenBy)")
        #expect(!servers.contains { $0.vlan == 10 }, "its offers are untagged")
        #expect(result.dhcp?.findings.contains { $0.hasPrefix("untagged: a DHCP server other than the front end's offers addresses to unknown clients: \(mac) (192.0.2.1), seen by fe, n2, n3; not seen by n1, which it may sit behind") } == true,
                "\(String(describing: result.dhcp?.findings))")
        let text = try cluster.vnetctlStatus(["verify-vlan", "--vlans", "10", "--dhcp"])
        #expect(text.0 == 1 && text.1.contains("ROGUE") && text.1.contains("dhcp: untagged: a DHCP server other than the front end's"), "\(text.1)")
        // Nothing was taken: the rogue server handed out no lease (no REQUEST followed its offers).
        let leases = (try? String(contentsOfFile: "\(cluster.directory)/rogue-dhcpd.leases", encoding: .utf8)) ?? ""
        #expect(!leases.contains("binding state active"), "\(leases)")
        let short = try cluster.vnetctlResult(["verify-vlan", "--vlans", "10", "--dhcp", "--probe-time", "1.5"])
        #expect(short.status != 0 && short.errors.contains("--dhcp listens"), "\(short.errors)")
    }

    func verify(_ cluster: NamespaceCluster, _ arguments: [String], probeTime: Double = 1.5) throws -> (Int32, Result) {
        do {
            let output = try cluster.vnetctl(["verify-vlan", "--json", "--probe-time", String(probeTime)] + arguments)
            return (0, try JSONDecoder().decode(Result.self, from: Data(output.utf8)))
        } catch let error as CommandError {
            return (error.status, try JSONDecoder().decode(Result.self, from: Data(error.stdout.utf8)))
        }
    }

    /// `--range`: the VIDs a MANAGED cluster may give its groups, checked before any group exists.
    @Test func theWholeVIDRangeIsCheckedBeforeAnyGroupUsesIt() throws {
        // The MANAGED front end of the VLAN suite, its groups allowed VIDs 100-103 only.
        let config = ManagedVLANClusterTests.frontendConfig + "VNET_VLANRANGE=\"100-103\"\n"
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"], frontendConfig: config,
                                           nodeConfig: "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\n", nodeBridges: false)
        try cluster.startDaemons()
        var (status, result) = try verify(cluster, ["--range"])
        #expect(status == 0 && result.vlans == [100, 101, 102, 103] && result.hosts == ["fe", "n1", "n2"], "\(result)")
        #expect(result.pairs.count == 15 && result.pairs.allSatisfy { $0.status == "ok" }, "3 pairs on 4 VIDs and the untagged control")
        // VID 102 not trunked to n2: the range check finds it before a group is ever given VID 102.
        try cluster.sh(cluster.switchNS, "nft add table bridge vnettest")
        try cluster.sh(cluster.switchNS, "nft add chain bridge vnettest portfilter { type filter hook forward priority 0 ; }")
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter oifname p-n2 vlan id 102 drop"], input: nil)
        (status, result) = try verify(cluster, ["--range"])
        #expect(status == 1 && result.culprits == ["102": "n2"], "\(result.culprits) \(result.pairs.filter { $0.status != "ok" })")
    }

    /// `--mtu`: jumbo frames everywhere, then one switch port at 1500 (a veth's MTU drops what does not fit, as a
    /// switch port configured for 1500 does), then one host's own interface at 1500.
    @Test func theLargestFramePerVIDFindsAShortPortAndDifferingInterfaces() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2", "n3"])
        for port in ["p-fe", "p-n1", "p-n2", "p-n3"] { try cluster.sh(cluster.switchNS, "ip link set \(port) mtu 9000") }
        for namespace in [cluster.frontEnd] + cluster.nodes.values { try cluster.sh(namespace, "ip link set eth0 mtu 9000") }
        // The control plane's route held to 1500: the short port below would otherwise swallow an agent's larger
        // TCP segments to the coordinator (a black hole, the very trouble --mtu finds) and take it off the bus.
        try cluster.sh(cluster.frontEnd, "ip route replace 10.99.0.0/24 dev eth0 mtu 1500")
        for namespace in cluster.nodes.values { try cluster.sh(namespace, "ip route replace 10.99.0.0/24 dev br0 mtu 1500") }
        try cluster.startDaemons()
        var started = Date()
        var (status, result) = try verify(cluster, ["--vlans", "10,20", "--mtu"], probeTime: 8)
        let clean = try #require(result.mtu, "\(result)")
        #expect(status == 0 && clean.findings.isEmpty, "\(clean.findings)")
        #expect(clean.expected == 9000 && clean.expectedSource == "fe's eth0 MTU (VNET_MTU unset)", "\(String(describing: clean.expectedSource))")
        #expect(clean.interfaces.count == 4 && clean.interfaces.allSatisfy { $0.mtu == 9000 && $0.name == "eth0" }, "\(clean.interfaces)")
        #expect(clean.paths.count == 36 && clean.paths.allSatisfy { $0.passed == 9000 && $0.failed == nil }, "4 hosts, 12 directions, 3 VIDs with the untagged: \(clean.paths.filter { $0.passed != 9000 })")
        #expect(Date().timeIntervalSince(started) < 5, "a clean --mtu ends early: \(Date().timeIntervalSince(started)) s of an 8.5 s window")

        // n3's switch port at 1500: every direction to or from n3 passes about 1500, not a byte more, on every VID.
        // Linux lets a frame 4 bytes (a tag's) over the MTU through a veth or bridge port, so 1504 may pass.
        try cluster.sh(cluster.switchNS, "ip link set p-n3 mtu 1500")
        started = Date()
        (status, result) = try verify(cluster, ["--vlans", "10,20", "--mtu"], probeTime: 8)
        let short = try #require(result.mtu)
        #expect(status == 1 && result.pairs.allSatisfy { $0.status == "ok" }, "small frames pass: the matrix is clean, the MTU is not")
        for path in short.paths {
            let touches = path.from == "n3" || path.to == "n3"
            #expect(touches ? ((1500...1504).contains(path.passed) && path.failed == path.passed + 1) : (path.passed == 9000 && path.failed == nil), "\(path)")
        }
        for vid in ["untagged", "VID 10", "VID 20"] {
            #expect(short.findings.contains { $0.hasPrefix("\(vid): n3's side passes at most 150") && $0.contains("to and from every other host") }, "\(vid): \(short.findings)")
        }
        let text = try cluster.vnetctlStatus(["verify-vlan", "--vlans", "20", "--mtu", "--probe-time", "8"])
        #expect(text.0 == 1 && text.1.contains("n3 -> fe") && text.1.contains("mtu: VID 20: n3's side passes at most 150"), "\(text.1)")
        VerifyVLANClusterTests.figure(String(format: "--mtu, 4 hosts x 2 VIDs, one port short: %.2f s", Date().timeIntervalSince(started)))

        // n2's own interface at 1500, its port back to 9000 too: the differing MTUs are named; held to 1500 nothing is short.
        try cluster.sh(cluster.switchNS, "ip link set p-n3 mtu 9000")
        try cluster.sh(cluster.nodes["n2"]!, "ip link set eth0 mtu 1500")
        (status, result) = try verify(cluster, ["--vlans", "10", "--mtu"], probeTime: 8)
        let differing = try #require(result.mtu)
        #expect(status == 1)
        #expect(differing.findings.contains { $0.hasPrefix("interface MTUs differ: 9000 on fe (eth0), n1 (eth0), n3 (eth0); 1500 on n2 (eth0)") }, "\(differing.findings)")
        #expect(differing.findings.contains("n2: eth0 MTU 1500, below the expected 9000 (fe's eth0 MTU (VNET_MTU unset))"), "\(differing.findings)")
        #expect(differing.paths.filter { $0.from == "n2" }.allSatisfy { $0.passed == 1500 && $0.failed == nil }, "n2 sends what its MTU allows")
        (status, result) = try verify(cluster, ["--vlans", "10", "--mtu", "--expect-mtu", "1500"], probeTime: 8)
        #expect(status == 1 && result.mtu?.findings.count == 1 && result.mtu?.expectedSource == "--expect-mtu", "\(String(describing: result.mtu?.findings))")
        // Bad input changes nothing and says why.
        let refused = try cluster.vnetctlResult(["verify-vlan", "--vlans", "10", "--mtu", "--method", "kernel"])
        #expect(refused.status != 0 && refused.errors.contains("--mtu needs the raw method"), "\(refused.errors)")
        let range = try cluster.vnetctlResult(["verify-vlan", "--vlans", "10", "--mtu", "--expect-mtu", "70000"])
        #expect(range.status != 0 && range.errors.contains("an MTU is 68-65535"), "\(range.errors)")
    }

    /// `vnet-coordinator --watch-vlans`: each node's path to the front end on the VIDs it carries (MANAGED: a
    /// group with instances on it; the nodes' applies fail here without 802.1Q devices, the probe needs none)
    /// and untagged, watched in rounds; a port turned dirty is reported (metric and log) within the stated time,
    /// and clean again after. The metrics are read as Prometheus reads them, over HTTP from the front end.
    @Test func theWatchReportsADirtyPortAndItsRepair() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2", "n3"], frontendConfig: ManagedVLANClusterTests.frontendConfig,
                                           nodeConfig: "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\n", nodeBridges: false)
        // A budget of 2000 frames/s and 2 rounds: a path is judged in about a second (the README's figures).
        cluster.coordinatorArguments = ["--watch-vlans", "--watch-budget", "2000", "--watch-hysteresis", "2", "--metrics", "10.99.0.1:9640"]
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        for (id, node) in [("i-0000f001", "n1"), ("i-0000f002", "n2")] {
            _ = try cluster.vnetctl(["run-instance", "--id", id, "--node", node, "--group", "web"])
        }
        struct Group: Decodable { var name: String; var vlan: Int? }
        let vid = try #require(try JSONDecoder().decode([Group].self, from: Data(cluster.vnetctl(["describe-groups", "--json"]).utf8)).first?.vlan)
        func pathUp() -> [String: Double] {
            let script = "import urllib.request; print(urllib.request.urlopen('http://10.99.0.1:9640/metrics', timeout=5).read().decode())"
            let text = (try? cluster.runner(cluster.frontEnd).run(["python3", "-c", script], input: nil)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            var out: [String: Double] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("vnet_vlan_path_up{") {
                guard let node = line.firstMatch(of: /node="([^"]+)"/)?.1, let vlan = line.firstMatch(of: /vid="([0-9]+)"/)?.1,
                      let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
                out["\(node)/\(vlan)"] = value
            }
            return out
        }
        let every = ["n1/0", "n2/0", "n3/0", "n1/\(vid)", "n2/\(vid)"]
        var seen: [String: Double] = [:]
        #expect(FaultInjectionTests.waitUntil(15, "every watched path UP") {
            seen = pathUp()
            return every.allSatisfy { seen[$0] == 1 } && seen.count == every.count
        }, "\(seen)")
        // n2's port drops the VID, both ways: DOWN within the stated time, and logged.
        try cluster.sh(cluster.switchNS, "nft add table bridge vnettest")
        try cluster.sh(cluster.switchNS, "nft add chain bridge vnettest portfilter { type filter hook forward priority 0 ; }")
        for direction in ["iifname", "oifname"] {
            _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter \(direction) p-n2 vlan id \(vid) drop"], input: nil)
        }
        var started = Date()
        #expect(FaultInjectionTests.waitUntil(10, "n2's path on VID \(vid) DOWN") { seen = pathUp(); return seen["n2/\(vid)"] == 0 }, "\(seen)")
        let detected = Date().timeIntervalSince(started)
        #expect(seen["n1/\(vid)"] == 1 && seen["n2/0"] == 1, "only that path: \(seen)")
        #expect(cluster.log("coordinator").contains("VLAN watch: VID \(vid) between n2 and fe is DOWN (2 rounds in a row failed)"))
        // Repaired: UP again.
        _ = try cluster.runner(cluster.switchNS).run(["nft", "delete table bridge vnettest"], input: nil)
        started = Date()
        #expect(FaultInjectionTests.waitUntil(10, "n2's path on VID \(vid) UP again") { seen = pathUp(); return seen["n2/\(vid)"] == 1 }, "\(seen)")
        let repaired = Date().timeIntervalSince(started)
        #expect(cluster.log("coordinator").contains("VLAN watch: VID \(vid) between n2 and fe is UP (2 rounds in a row passed)"))
        Self.figure(String(format: "watch (2000 frames/s, 2 rounds): a dirty port seen DOWN after %.1f s, UP again %.1f s after the repair", detected, repaired))
        // An operator's verification still runs beside the watch (it waits for a round to end).
        let (status, result) = try verify(cluster, ["--vlans", "\(vid)"], probeTime: 2)
        #expect(status == 0 && result.pairs.allSatisfy { $0.status == "ok" }, "\(result.pairs.filter { $0.status != "ok" })")
    }

    /// A rogue host floods the wire with VLAN probe frames (broadcast, tagged, a new sender name each) and LLDP
    /// frames (a new switch each) while a verification runs: the verification still judges the real hosts right,
    /// in its window, and every agent stays UP, reading LLDP at its rate and keeping no more forged switch ports
    /// than its table holds.
    @Test func aFloodOfProbeAndLLDPFramesWedgesNoAgent() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()
        // The switch forwards LLDP like a hub would (a Linux bridge keeps 01:80:c2:00:00:0e to itself by default),
        // so the rogue host's LLDP reaches every host.
        try cluster.sh(cluster.switchNS, "ip link set sw type bridge group_fwd_mask 16384")
        // 5000 frames a second for 8 s from the outside host, half probes, half LLDP.
        let flood = #"""
            import socket, struct, time, os, sys
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind(("eth0", 0))
            lldpGroup = bytes.fromhex("0180c200000e")
            me = bytes.fromhex("02deadbeef01")
            def tlv(t, v): return struct.pack("!H", (t << 9) | len(v)) + v
            end = time.time() + 8
            i = 0
            while time.time() < end:
                for _ in range(50):
                    i += 1
                    name = b"rogue%d" % i
                    probe = b"\xff" * 6 + me + struct.pack("!HHH", 0x8100, 10, 0x88b5) + b"VNVP" + bytes([1, 1]) + struct.pack("!HQIQ", 10, i, i, 0) + bytes([len(name)]) + name + b"\0\0"
                    s.send(probe + b"\0" * max(0, 60 - len(probe)))
                    lldp = lldpGroup + me + b"\x88\xcc" + tlv(1, b"\x07sw-rogue-%d" % i) + tlv(2, b"\x07p%d" % i) + tlv(3, b"\x00\x78") + tlv(0, b"")
                    s.send(lldp)
                time.sleep(0.02)
            """#
        let flooder = try NamespaceFixtures.launchTool(["python3", "-c", flood], in: cluster.outside, log: "\(cluster.directory)/flood.log")
        defer { if flooder.isRunning { kill(flooder.processIdentifier, SIGKILL); flooder.waitUntilExit() } }
        Thread.sleep(forTimeInterval: 1)
        let (status, result) = try verify(cluster, ["--vlans", "10"], probeTime: 3)
        #expect(status == 0 && result.unreachable.isEmpty && result.pairs.allSatisfy { $0.status == "ok" },
                "the real hosts judged right under the flood: \(result.pairs.filter { $0.status != "ok" }) \(result.unreachable)")
        #expect(result.hosts == ["fe", "n1", "n2"], "forged senders are not hosts")
        flooder.waitUntilExit()
        #expect(flooder.terminationStatus == 0, "the flood ran: \(cluster.log("flood"))")
        struct Node: Decodable { var id: String; var state: String; var switchPorts: [SwitchPort]?; struct SwitchPort: Decodable { var label: String } }
        let nodes = try JSONDecoder().decode([Node].self, from: Data(cluster.vnetctl(["nodes", "--detail", "--json"]).utf8))
        #expect(nodes.allSatisfy { $0.state == "UP" }, "every agent kept its heartbeats: \(nodes.map { "\($0.id) \($0.state)" })")
        let forged = nodes.first { $0.id == "n1" }?.switchPorts ?? []
        #expect((1...16).contains(forged.count), "the forged LLDP arrived, and at most 16 neighbors are kept: \(forged.count)")
    }

    static func figure(_ text: String) { FileHandle.standardError.write(Data("verify-vlan: \(text)\n".utf8)) }

    @Test func aCleanSwitchPassesADirtyPortIsNamedADownNodeIsUnreachable() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2", "n3"])
        try cluster.startDaemons()
        // Clean: over as soon as every host has every answer, long before its 8 s window.
        var started = Date()
        var (status, result) = try verify(cluster, ["--vlans", "10,20", "--frontend"], probeTime: 8)
        #expect(status == 0 && result.hosts == ["fe", "n1", "n2", "n3"])
        #expect(result.pairs.count == 18 && result.pairs.allSatisfy { $0.status == "ok" }, "\(result.pairs.filter { $0.status != "ok" })")
        #expect(Date().timeIntervalSince(started) < 4, "a clean verification ends early: \(Date().timeIntervalSince(started)) s of an 8.5 s window")

        // Tagged frames dropped on n3's switch port, both ways.
        try cluster.sh(cluster.switchNS, "nft add table bridge vnettest")
        try cluster.sh(cluster.switchNS, "nft add chain bridge vnettest portfilter { type filter hook forward priority 0 ; }")
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter iifname p-n3 ether type 8021q drop"], input: nil)
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter oifname p-n3 ether type 8021q drop"], input: nil)
        started = Date()
        (status, result) = try verify(cluster, ["--vlans", "10,20"], probeTime: 2)
        #expect(Date().timeIntervalSince(started) >= 2, "failing pairs keep the window open to its end")
        #expect(status == 1, "a failure exits 1")
        #expect(result.hosts == ["fe", "n1", "n2", "n3"], "the front end takes part unless told not to")
        #expect(result.culprits == ["10": "n3", "20": "n3"])
        #expect(result.conclusions.count == 2 && result.conclusions.allSatisfy { $0.contains("n3's side drops it") && $0.contains("so its link is up") }, "\(result.conclusions)")
        // Two hosts cannot tell the side.
        (status, result) = try verify(cluster, ["--vlans", "10", "--nodes", "n1,n3", "--no-frontend"])
        #expect(status == 1 && result.hosts == ["n1", "n3"] && result.culprits.isEmpty)
        #expect(result.conclusions == ["VID 10 fails between n1 and n3 (FAILED): with two hosts either side may drop it; a third host tells which (the front end takes part unless --no-frontend)"])
        for pair in result.pairs where pair.vlan != 0 { #expect((pair.status == "failed") == (pair.a == "n3" || pair.b == "n3"), "\(pair)") }
        #expect(result.pairs.filter { $0.vlan == 0 }.allSatisfy { $0.status == "ok" }, "the untagged control passes")
        let text = (try? cluster.vnetctl(["verify-vlan", "--vlans", "10", "--nodes", "n1,n3", "--frontend", "--probe-time", "1.5"])) ?? ""
        #expect(text.isEmpty, "exit status 1 makes the runner throw")

        // Only VID 10 dropped: only VID 10 fails. Then ingress only (frames from n3 dropped): one-way, towards n3.
        _ = try cluster.runner(cluster.switchNS).run(["nft", "flush chain bridge vnettest portfilter"], input: nil)
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter iifname p-n3 vlan id 10 drop"], input: nil)
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter oifname p-n3 vlan id 10 drop"], input: nil)
        (status, result) = try verify(cluster, ["--vlans", "10,20", "--frontend"])
        #expect(status == 1 && result.culprits == ["10": "n3"])
        #expect(result.pairs.filter { $0.vlan == 20 }.allSatisfy { $0.status == "ok" })
        _ = try cluster.runner(cluster.switchNS).run(["nft", "flush chain bridge vnettest portfilter"], input: nil)
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter iifname p-n3 vlan id 10 drop"], input: nil)
        (status, result) = try verify(cluster, ["--vlans", "10", "--frontend"])
        let n1n3 = result.pairs.first { $0.vlan == 10 && $0.a == "n1" && $0.b == "n3" }
        #expect(n1n3?.status == "one-way" && n1n3?.from == "n1" && n1n3?.to == "n3", "\(String(describing: n1n3))")

        // A node whose agent is gone is unreachable, not a VLAN failure.
        _ = try cluster.runner(cluster.switchNS).run(["nft", "flush chain bridge vnettest portfilter"], input: nil)
        let n2Agent = cluster.processes.first { ($0.arguments ?? []).contains("n2") }!
        kill(n2Agent.processIdentifier, SIGKILL)
        n2Agent.waitUntilExit()
        // DOWN after three missed heartbeats: waited for in the coordinator's listing.
        #expect(FaultInjectionTests.waitUntil(10, "n2 is DOWN") { FaultInjectionTests.nodes(cluster)["n2"]?.state == "DOWN" })
        (status, result) = try verify(cluster, ["--vlans", "10"])
        #expect(result.unreachable == ["n2"])
        #expect(result.pairs.filter { $0.a != "n2" && $0.b != "n2" }.allSatisfy { $0.status == "ok" })
        #expect(result.pairs.filter { $0.a == "n2" || $0.b == "n2" }.allSatisfy { $0.status == "unreachable" })
        #expect(result.culprits.isEmpty)
    }

    /// The document's manual check, automated: `<iface>.<vid>` devices with test addresses, pings, removed again.
    /// This machine's kernel has no 802.1Q: it says so and points to the default method.
    @Test(.enabled(if: !VLANLane.inVM)) func theKernelMethodSaysWhenTheKernelHasNo8021Q() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1"])
        try cluster.startDaemons()
        let (status, result) = try verify(cluster, ["--vlans", "10", "--frontend", "--method", "kernel"])
        #expect(status == 1)
        #expect(result.problems?.contains("this kernel has no 802.1Q VLAN devices; use the default method") == true, "\(result.problems ?? "")")
        #expect(result.unreachable == ["fe", "n1"], "hosts that could not run the check are not reported as VLAN failures")
    }

    /// Inside the VM lane (a kernel with 802.1Q): the kernel method finds what the raw method finds, and leaves
    /// no device behind.
    @Test(.enabled(if: VLANLane.inVM, VLANLane.reason)) func kernelMethodInsideTheVM() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2", "n3"])
        try cluster.startDaemons()
        var (status, result) = try verify(cluster, ["--vlans", "10,20", "--frontend", "--method", "kernel", "--count", "2", "--probe-time", "8"])
        #expect(status == 0 && result.pairs.count == 12 && result.pairs.allSatisfy { $0.status == "ok" }, "\(result)")
        // Three clean runs with the nodes' agents reconciling each second: the check's <iface>.<vid> devices are
        // not theirs (agents took them for theirs by the name and deleted them mid-check, which fails the pairs
        // of that host). They are restarted with the 1 s interval once up, and the front end's keeps its default.
        // Under emulation every reconcile still holds an agent's heartbeats (apply runs on the socket thread), so
        // a host may show SUSPECT at the moment a run starts and be skipped as unreachable: such a run is not
        // counted (up to three more are made), but no run may have a pair that failed.
        cluster.agentArguments = ["--reconcile-interval", "1"]
        for host in ["n1", "n2", "n3"] {
            cluster.kill9(cluster.agent(host))
            try cluster.startNodeAgent(host)
        }
        func allUp() -> Bool {
            let listing: String = (try? cluster.vnetctl(["nodes"])) ?? ""
            return listing.components(separatedBy: " UP ").count == 5
        }
        var clean = 0, runs = 0
        while clean < 3, runs < 6 {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, !allUp() { Thread.sleep(forTimeInterval: 0.2) }
            runs += 1
            (status, result) = try verify(cluster, ["--vlans", "10,20", "--frontend", "--method", "kernel", "--count", "2", "--probe-time", "8"])
            #expect(!result.pairs.contains { $0.status == "failed" }, "with a 1 s reconcile: \(result)")
            if status == 0, result.pairs.allSatisfy({ $0.status == "ok" }) { clean += 1 }
        }
        #expect(clean == 3, "three clean runs with a 1 s reconcile, in \(runs) runs")
        for host in ["n1", "n2", "n3"] {
            let log: String = cluster.log(host + "-agent")
            let tail = String(log.suffix(1500))
            #expect(!log.contains("drift"), "\(host)'s reconcile took the check's devices for drift: \(tail)")
        }
        try cluster.sh(cluster.switchNS, "nft add table bridge vnettest")
        try cluster.sh(cluster.switchNS, "nft add chain bridge vnettest portfilter { type filter hook forward priority 0 ; }")
        _ = try cluster.runner(cluster.switchNS).run(["nft", "add rule bridge vnettest portfilter iifname p-n3 vlan id 20 drop"], input: nil)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !allUp() { Thread.sleep(forTimeInterval: 0.2) }
        (status, result) = try verify(cluster, ["--vlans", "10,20", "--frontend", "--method", "kernel", "--count", "2", "--probe-time", "8"])
        #expect(status == 1 && result.culprits == ["20": "n3"], "\(result)")
        // Every host removes its check's devices when its check ends; a host whose report came late (after the
        // coordinator stopped waiting) ends a little later.
        for namespace in [cluster.frontEnd] + cluster.nodes.values.map({ $0 }) {
            func testDevices() throws -> [String] {
                let links = try LinkObservation.links(fromJSON: try cluster.runner(namespace).run(["ip", "-json", "-details", "link", "show"], input: nil))
                return links.map(\.name).filter { $0.hasPrefix("eth0.") || $0.hasPrefix("br0.") }
            }
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline, !(try testDevices()).isEmpty { Thread.sleep(forTimeInterval: 0.5) }
            #expect(try testDevices().isEmpty, "test devices removed")
        }
    }
}
