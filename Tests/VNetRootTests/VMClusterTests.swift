import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// Lane 4 (`VMCluster`): a front end and two nodes, each its own VM with Debian's kernel and a virtio-net NIC on
/// a switch namespace. fe's and n1's NICs are QEMU's default, which filters VIDs in the NIC as many real ones
/// do (a tagged frame for a VID no VLAN device registered is dropped before any packet socket sees it); n2's
/// has `ctrl_vlan=off`, a NIC that filters nothing. Filtering happens where a frame is received: fe <-> n1 is
/// filtering both ways, and each pair with n2 has one direction of each kind. The operator's vnetctl runs on the
/// host, in the outside namespace on the same switch (a workstation that reaches the front end).
@Suite("lane 4: MANAGED across VMs with real NICs", .enabled(if: RootLane.enabled && !VLANLane.inVM, RootLane.reason), .serialized)
struct VMClusterTests {
    static let binaries = NamespaceFixtures.binaries.path
    static let bus = "--coordinator 10.99.0.1:7460 --insecure"

    struct Group: Decodable { var name: String; var vlan: Int? }
    struct Verification: Decodable {
        struct Pair: Decodable { var a: String, b: String, vlan: Int, status: String }
        struct MTU: Decodable { var expected: Int?; var interfaces: [MTUVerification.Interface]; var paths: [MTUVerification.Path]; var findings: [String] }
        struct DHCP: Decodable {
            struct Server: Decodable { var vlan: Int; var mac: String; var seenBy: [String]; var allowed: Bool; var rogue: Bool }
            var servers: [Server]; var findings: [String]
        }
        var pairs: [Pair], culprits: [String: String], advice: [String], conclusions: [String]
        var switchPorts: [String: String]
        var mtu: MTU?
        var dhcp: DHCP?
    }

    static func figure(_ text: String) { FileHandle.standardError.write(Data("lane4: \(text)\n".utf8)) }

    @Test func managedAcrossVMsAndVerifyVLANOnFilteringAndNonFilteringNICs() throws {
        let cluster = try VMCluster(hosts: [.init(name: "fe", nic: "", mac: "52:54:00:00:04:01"),
                                            .init(name: "n1", nic: "", mac: "52:54:00:00:04:02"),
                                            .init(name: "n2", nic: ",ctrl_vlan=off", mac: "52:54:00:00:04:03")])
        try cluster.waitUntilReady()
        Self.figure(String(format: "3 VMs up (boot to command server) after %.1f s", cluster.readyAfter))
        // The switch announces each port (Debian's lldpd on the taps: sw1, Eth1/1-3), as a real switch would:
        // LLDP's multicast group must get past each virtio NIC's receive filter into the guest.
        try "configure system hostname sw1\nconfigure lldp tx-interval 1\n"
            .appending(["fe", "n1", "n2"].enumerated().map { "configure ports p-\($1) lldp portidsubtype local Eth1/\($0 + 1)\n" }.joined())
            .write(toFile: "\(cluster.directory)/lldpd.conf", atomically: true, encoding: .utf8)
        let lldpd = try NamespaceFixtures.launchTool(["/usr/sbin/lldpd", "-d", "-k", "-u", "\(cluster.directory)/lldpd.sock", "-I", "p-fe,p-n1,p-n2",
                                                      "-O", "\(cluster.directory)/lldpd.conf"], in: cluster.switchNS, log: "\(cluster.directory)/lldpd.log")
        defer {
            // lldpd forks, and ignores SIGTERM as Foundation starts it: every process in the switch namespace but qemu.
            let pids = (try? cluster.onSwitch(["ip", "netns", "pids", cluster.switchNS.name])) ?? ""
            let qemus = Set(cluster.qemus.values.map(\.processIdentifier))
            for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) where !qemus.contains(pid) { kill(pid, SIGKILL) }
            lldpd.waitUntilExit()
        }
        let clock = Date()
        func since(_ start: Date) -> String { String(format: "%.1f s", Date().timeIntervalSince(start)) }

        // The NICs as their kernels see them.
        for (host, filter) in [("fe", "on"), ("n1", "on"), ("n2", "off")] {
            let features = try cluster.run(host, "ethtool -k eth0 | grep rx-vlan-filter")
            #expect(features.contains("rx-vlan-filter: \(filter)"), "\(host): \(features)")
        }

        // Addresses of the management network (untagged on eth0), configs in the shares, the daemons.
        try ManagedVLANClusterTests.frontendConfig.write(toFile: cluster.sharePath("fe", "fe.conf"), atomically: true, encoding: .utf8)
        try cluster.run("fe", "ip address add 10.99.0.1/24 dev eth0 && ip route add 203.0.113.96/28 dev eth0")
        for (index, node) in ["n1", "n2"].enumerated() {
            try "VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\n".write(toFile: cluster.sharePath(node, "node.conf"), atomically: true, encoding: .utf8)
            try cluster.run(node, "ip address add 10.99.0.\(11 + index)/24 dev eth0")
        }
        _ = cluster.onOutside(["ip", "address", "add", "203.0.113.100/24", "dev", "eth0"])
        _ = cluster.onOutside(["ip", "route", "add", "10.99.0.0/24", "dev", "eth0"])
        let b = Self.binaries
        // No periodic reconcile: under emulation a front end's reconcile (iptables-save of two tables) takes
        // seconds, and it holds the agent's loop (heartbeats, probe commands) while it runs.
        try cluster.start("fe", "coordinator", "\(b)/vnet-coordinator --config /vnet-vm/fe.conf --state-dir /root/coordinator --listen 10.99.0.1:7460 --insecure --frontend fe"
                          // Software emulation runs about ten times slower than the hardware these intervals are
                          // meant for, and an apply holds the agent's heartbeats while it runs.
                          + " --suspect-after 5 --down-after 10")
        try cluster.start("fe", "fe-agent", "\(b)/vnet-agent --role frontend --config /vnet-vm/fe.conf --node-id fe --state-dir /root/agent --backend linux --reconcile-interval 0 \(Self.bus)")
        for node in ["n1", "n2"] {
            try cluster.start(node, "agent", "\(b)/vnet-agent --config /vnet-vm/node.conf --node-id \(node) --state-dir /root/agent --backend linux --reconcile-interval 0 \(Self.bus)")
        }
        /// (status, stdout, and stderr after it when the status is not 0, for the messages).
        func vnetctl(_ arguments: String) throws -> (status: Int32, output: String) {
            let (status, output, errors) = try NamespaceCluster.result(
                of: ["\(b)/vnetctl"] + arguments.split(separator: " ").map(String.init) + Self.bus.split(separator: " ").map(String.init),
                in: cluster.outside.name, directory: cluster.directory)
            return (status, status == 0 ? output : output + errors)
        }
        let up = Date()
        var nodes = ""
        for _ in 0..<120 where nodes.components(separatedBy: " UP ").count != 4 {
            nodes = (try? vnetctl("nodes").output) ?? ""
            if nodes.components(separatedBy: " UP ").count != 4 { Thread.sleep(forTimeInterval: 0.5) }
        }
        try #require(nodes.components(separatedBy: " UP ").count == 4, "\(nodes)\n\(cluster.log("fe", "coordinator").suffix(1500))")
        Self.figure("every agent UP \(since(up)) after the daemons were started")
        // And every host has applied its first state (the front end's first firewall apply loads netfilter's
        // modules: slow under emulation, and its heartbeats wait for it).
        struct Node: Decodable { var id: String; var state: String; var desiredRevision: UInt64; var appliedRevision: UInt64 }
        var settled = false
        for _ in 0..<120 where !settled {
            let list = (try? JSONDecoder().decode([Node].self, from: Data(((try? vnetctl("nodes --json"))?.output ?? "").utf8))) ?? []
            settled = list.count == 3 && list.allSatisfy { $0.state == "UP" && $0.appliedRevision == $0.desiredRevision }
            if !settled { Thread.sleep(forTimeInterval: 0.5) }
        }
        #expect(settled, "every host applied its first state")
        Self.figure("every host applied its first state \(since(up)) after the daemons were started")

        // verify-vlan on VIDs no group uses (no VLAN device registers them): the filtering NICs must not hide them.
        func verify(_ arguments: String, hosts: String = "--frontend", probeTime: Int = 5) throws -> (status: Int32, result: Verification, seconds: String) {
            let start = Date()
            // 5 s of probing: the hosts get the coordinator's word up to a few seconds apart under emulation.
            let (status, output, _) = try NamespaceCluster.result(
                of: ["\(b)/vnetctl", "verify-vlan"] + "\(hosts) --json --probe-time \(probeTime) \(arguments) \(Self.bus)".split(separator: " ").map(String.init),
                in: cluster.outside.name, directory: cluster.directory)
            let result = try JSONDecoder().decode(Verification.self, from: Data(output.utf8))
            return (status, result, since(start))
        }
        func statuses(_ result: Verification, _ vlan: Int) -> [String: String] {
            Dictionary(uniqueKeysWithValues: result.pairs.filter { $0.vlan == vlan }.map { ("\($0.a)-\($0.b)", $0.status) })
        }
        // Each kind of pair on its own, then all three hosts.
        for (hosts, kind) in [("--frontend --nodes n1", "filtering both ways"), ("--frontend --nodes n2", "filtering one way only")] {
            let pair = try verify("--vlans 100,200", hosts: hosts)
            #expect(pair.status == 0 && pair.result.pairs.count == 3 && pair.result.pairs.allSatisfy { $0.status == "ok" }, "\(kind): \(pair.result.pairs)")
            Self.figure("verify-vlan raw, 2 hosts (NICs \(kind)) x 2 VIDs, clean: \(pair.seconds)")
        }
        let clean = try verify("--vlans 100,200")
        #expect(clean.status == 0 && clean.result.pairs.allSatisfy { $0.status == "ok" } && clean.result.pairs.count == 9,
                "raw method, clean switch: \(clean.result.pairs.filter { $0.status != "ok" })")
        Self.figure("verify-vlan raw, 3 hosts x 2 VIDs, clean: \(clean.seconds)")
        // The kernel method, three times in a row: the agents' reconcile must leave its devices alone. Its hosts
        // report when their pings are done; under emulation, creating devices and starting pings takes seconds.
        let kernel = "--method kernel --probe-time 8"
        var kernelClean = try verify("--vlans 100 \(kernel)")
        for _ in 0..<2 where kernelClean.status == 0 { kernelClean = try verify("--vlans 100 \(kernel)") }
        #expect(kernelClean.status == 0 && kernelClean.result.pairs.allSatisfy { $0.status == "ok" }, "kernel method, clean: \(kernelClean.result.pairs)")
        Self.figure("verify-vlan kernel, 3 hosts x 1 VID, clean: \(kernelClean.seconds)")
        for host in ["fe", "n1", "n2"] {
            let promiscuity = try cluster.run(host, "ip -details link show eth0 | grep -o 'promiscuity [0-9]*'")
            #expect(promiscuity.contains("promiscuity 0"), "\(host): the probe left its NIC as it was: \(promiscuity)")
            #expect(try cluster.run(host, "ip -o link show type vlan | wc -l").trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(host): no VLAN device left")
        }

        // Dirty ports on the switch: n1's (a filtering NIC) drops VID 100, n2's (non-filtering) VID 200.
        _ = try cluster.onSwitch(["nft", "add table bridge lane4"])
        _ = try cluster.onSwitch(["nft", "add chain bridge lane4 portfilter { type filter hook forward priority 0 ; }"])
        for (port, vid) in [("p-n1", 100), ("p-n2", 200)] {
            for direction in ["iifname", "oifname"] {
                _ = try cluster.onSwitch(["nft", "add rule bridge lane4 portfilter \(direction) \(port) vlan id \(vid) drop"])
            }
        }
        // Every host's switch port, heard through its NIC (LLDP), reported at once.
        struct Ports: Decodable { struct Port: Decodable { var label: String }; var id: String; var switchPorts: [Port]? }
        var heard: [String: String] = [:]
        for _ in 0..<60 where heard.count < 3 {
            let nodes = (try? JSONDecoder().decode([Ports].self, from: Data(((try? vnetctl("nodes --detail --json"))?.output ?? "").utf8))) ?? []
            heard = Dictionary(nodes.compactMap { node in node.switchPorts?.first.map { (node.id, $0.label) } }, uniquingKeysWith: { a, _ in a })
            if heard.count < 3 { Thread.sleep(forTimeInterval: 0.5) }
        }
        #expect(heard == ["fe": "sw1 Eth1/1", "n1": "sw1 Eth1/2", "n2": "sw1 Eth1/3"], "LLDP through the virtio NICs: \(heard)")
        let dirty = try verify("--vlans 100,200")
        #expect(dirty.status == 1)
        #expect(dirty.result.conclusions.contains { $0.hasPrefix("VID 100: n1 (sw1 Eth1/2) fails with every other host") }, "\(dirty.result.conclusions)")
        #expect(dirty.result.switchPorts == heard)
        #expect(dirty.result.culprits == ["100": "n1", "200": "n2"], "\(dirty.result.culprits) \(dirty.result.pairs)")
        // Exactly the pairs with the dirty port fail.
        func failingExactlyWith(_ host: String, _ result: Verification, _ vlan: Int) -> Bool {
            let found = statuses(result, vlan)
            return found.count == 3 && found.allSatisfy { pair, status in (status == "failed") == pair.split(separator: "-").contains(Substring(host)) && (status == "failed" || status == "ok") }
        }
        #expect(failingExactlyWith("n1", dirty.result, 100), "\(statuses(dirty.result, 100))")
        #expect(failingExactlyWith("n2", dirty.result, 200), "\(statuses(dirty.result, 200))")
        #expect(statuses(dirty.result, 0).values.allSatisfy { $0 == "ok" }, "untagged passes")
        let kernelDirty = try verify("--vlans 100 \(kernel)")
        #expect(kernelDirty.status == 1 && failingExactlyWith("n1", kernelDirty.result, 100), "kernel method, dirty: \(kernelDirty.result.pairs)")
        // Every tagged frame dropped on every port, untagged passing: the report says what that can mean.
        _ = try cluster.onSwitch(["nft", "flush chain bridge lane4 portfilter"])
        _ = try cluster.onSwitch(["nft", "add rule bridge lane4 portfilter ether type 8021q drop"])
        let cut = try verify("--vlans 100")
        #expect(cut.status == 1 && cut.result.advice.first?.contains("NICs drop VIDs") == true, "\(cut.result.advice)")
        _ = try cluster.onSwitch(["nft", "delete table bridge lane4"])

        // --mtu through real NICs: jumbo frames on every NIC and switch port (taps), VIDs no device registers
        // (the probe's promiscuous membership gets big tagged frames past the filtering NICs too). Then n2's
        // switch port at 1500: the bridge drops what it would send towards n2 over that; n2's own frames pass.
        // The control plane's route stays at 1500: the short port would otherwise swallow the larger TCP segments
        // towards n2 (a black hole, the very trouble --mtu finds) and take n2 off the bus.
        for host in ["fe", "n1", "n2"] { try cluster.run(host, "ip link set eth0 mtu 9000 && ip route replace 10.99.0.0/24 dev eth0 mtu 1500") }
        for port in ["p-fe", "p-n1", "p-n2"] { _ = try cluster.onSwitch(["ip", "link", "set", port, "mtu", "9000"]) }
        let jumbo = try verify("--vlans 100,200 --mtu")
        let jumboMTU = try #require(jumbo.result.mtu)
        #expect(jumbo.status == 0 && jumboMTU.findings.isEmpty && jumboMTU.expected == 9000, "\(jumboMTU.findings)")
        #expect(jumboMTU.paths.count == 18 && jumboMTU.paths.allSatisfy { $0.passed == 9000 && $0.failed == nil },
                "6 directions on 2 VIDs and untagged: \(jumboMTU.paths.filter { $0.passed != 9000 })")
        Self.figure("verify-vlan --mtu, 3 hosts x 2 VIDs, jumbo frames everywhere: \(jumbo.seconds)")
        _ = try cluster.onSwitch(["ip", "link", "set", "p-n2", "mtu", "1500"])
        // Searching every direction towards n2 down to the byte takes about 4-5 s under emulation (a failing size
        // waits its timeouts, and the guests' round trips vary by tens of ms): a 12 s window, which a search
        // that ends sooner does not use. A direction not searched by the window's end is not reported.
        let narrow = try verify("--vlans 100,200 --mtu", probeTime: 12)
        let narrowMTU = try #require(narrow.result.mtu)
        #expect(narrowMTU.paths.filter { $0.to == "n2" }.count == 6, "every direction towards n2 searched: \(narrowMTU.paths)")
        #expect(narrow.status == 1 && narrow.result.pairs.allSatisfy { $0.status == "ok" }, "small frames pass everywhere")
        for path in narrowMTU.paths {
            // Linux lets a frame a tag's 4 bytes (and a tagged one its tag) over a port's MTU: 1500-1504 pass.
            #expect(path.to == "n2" ? ((1500...1504).contains(path.passed) && path.failed == path.passed + 1) : (path.passed == 9000 && path.failed == nil), "\(path)")
        }
        #expect(narrowMTU.findings.contains { $0.hasPrefix("VID 100: frames towards n2 (sw1 Eth1/3) pass at most 150") && $0.contains("(frames from n2 pass)") }, "\(narrowMTU.findings)")
        Self.figure("verify-vlan --mtu, 3 hosts x 2 VIDs, n2's port at 1500: \(narrow.seconds)")
        for port in ["p-fe", "p-n1", "p-n2"] { _ = try cluster.onSwitch(["ip", "link", "set", port, "mtu", "1500"]) }
        for host in ["fe", "n1", "n2"] { try cluster.run(host, "ip link set eth0 mtu 1500 && ip route replace 10.99.0.0/24 dev eth0") }

        // MANAGED end to end: each group its VLAN, eth0.<vlan> and eucabr<vlan> on the nodes, DHCP per VLAN.
        _ = try vnetctl("create-group --group web")
        _ = try vnetctl("create-group --group db")
        let groups = try JSONDecoder().decode([Group].self, from: Data(try vnetctl("describe-groups --json").output.utf8))
        let web = try #require(groups.first { $0.name == "web" }?.vlan), db = try #require(groups.first { $0.name == "db" }?.vlan)
        try """
            #!/bin/sh
            case "$reason" in BOUND|REBOOT|RENEW|REBIND)
              ip address add "$new_ip_address/$new_subnet_mask" dev "$interface"
              ip route replace default via "$new_routers" dev "$interface";;
            esac

            """.write(toFile: cluster.sharePath("n1", "dhclient-script"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: cluster.sharePath("n1", "dhclient-script"), toPath: cluster.sharePath("n2", "dhclient-script"))
        for node in ["n1", "n2"] { chmod(cluster.sharePath(node, "dhclient-script"), 0o755) }
        let a1 = InstanceID("i-0000e001")!, a2 = InstanceID("i-0000e002")!, b1 = InstanceID("i-0000e003")!
        let placement = [(a1, "n1", "web"), (a2, "n2", "web"), (b1, "n1", "db")]
        let bringUp = Date()
        for (id, node, group) in placement {
            let vif = "vm" + id.hexDigits, ns = "i" + id.hexDigits
            try cluster.run(node, """
                ip netns add \(ns) && ip link add \(vif) type veth peer name eth0 netns \(ns) && ip link set \(vif) up
                ip -n \(ns) link set lo up && ip -n \(ns) link set eth0 address \(MACPrefix.eucalyptusDefault.mac(for: id)) && ip -n \(ns) link set eth0 up
                """)
            // VLAN web comes up on n2 with a2 while n2's switch port drops it: the instance is made, and --wait
            // says the VID does not pass between n2 and the front end, naming n2's port (bring-up check).
            let dropping = id == a2
            if dropping {
                _ = try cluster.onSwitch(["nft", "add table bridge bringup"])
                _ = try cluster.onSwitch(["nft", "add chain bridge bringup port { type filter hook forward priority 0 ; }"])
                for direction in ["iifname", "oifname"] { _ = try cluster.onSwitch(["nft", "add rule bridge bringup port \(direction) p-n2 vlan id \(web) drop"]) }
            }
            let (status, output) = try vnetctl("run-instance --id \(id) --node \(node) --group \(group) --vif \(vif) --wait --wait-timeout 60")
            try #require(status == 0, "run-instance \(id): \(output)")
            if dropping {
                #expect(output.contains("warning: applied on n2, but VID \(web) does not pass between n2 and fe (n2's port sw1 Eth1/3 drops it?)"), "\(output)")
                _ = try cluster.onSwitch(["nft", "delete table bridge bringup"])
            } else {
                #expect(!output.contains("warning:"), "\(id): its VLAN passes: \(output)")
            }
        }
        Self.figure("3 instances run (every host applied) in \(since(bringUp))")
        for node in ["n1", "n2"] {
            let links = try cluster.run(node, "ip -o -details link show")
            #expect(links.contains("eth0.\(web)@eth0") && links.contains("master eucabr\(web)"), "\(node): eth0.\(web) in eucabr\(web)")
        }
        #expect(try cluster.run("fe", "ip -o -details link show").contains("eth0.\(db)@eth0"), "the front end's VLAN devices")
        var address: [InstanceID: String] = [:]
        let dhcp = Date()
        for (id, node, _) in placement {
            let ns = "i" + id.hexDigits
            let output = try cluster.run(node, """
                ip netns exec \(ns) timeout 60 dhclient -4 -1 -sf /vnet-vm/dhclient-script -pf /run/\(ns).pid -lf /run/\(ns).leases eth0 >/dev/null 2>&1
                ip -n \(ns) -4 -o address show dev eth0 | awk '{print $4}' | cut -d/ -f1
                """)
            address[id] = output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        Self.figure("3 instances DHCP'd over their VLANs in \(since(dhcp))")
        #expect([address[a1], address[a2], address[b1]] == ["10.20.2.2", "10.20.2.3", "10.20.2.66"], "\(address)\n\(cluster.log("fe", "fe-agent").suffix(1500))")
        func ping(_ id: InstanceID, on node: String, _ target: String) -> Bool {
            (try? cluster.result(node, "ip netns exec i\(id.hexDigits) ping -c 1 -W 2 \(target) || ip netns exec i\(id.hexDigits) ping -c 1 -W 2 \(target)").status) == 0
        }
        #expect(ping(a1, on: "n1", address[a2]!), "same group, two VMs, over VLAN \(web) through real NICs")
        #expect(!ping(a1, on: "n1", address[b1]!), "another group: not before authorize")
        _ = try vnetctl("authorize --group db --protocol icmp --source-group web --wait --wait-timeout 60")
        #expect(ping(a1, on: "n1", address[b1]!), "reachable once db authorizes icmp from web")
        _ = try vnetctl("revoke --group db --protocol icmp --source-group web --wait --wait-timeout 60")
        #expect(!ping(a1, on: "n1", address[b1]!), "not after revoke")

        // An elastic IP, reached from the outside namespace on the switch.
        _ = try vnetctl("authorize --group web --protocol icmp --source-cidr 0.0.0.0/0 --wait --wait-timeout 60")
        _ = try vnetctl("allocate-address --address 203.0.113.10")
        _ = try vnetctl("associate-address --address 203.0.113.10 --instance \(a1) --wait --wait-timeout 60")
        #expect(cluster.onOutside(["ping", "-c", "2", "-W", "2", "203.0.113.10"]).0, "the outside reaches a1 by its public IP")
        _ = try vnetctl("disassociate-address --address 203.0.113.10 --wait --wait-timeout 60")
        #expect(!cluster.onOutside(["ping", "-c", "1", "-W", "2", "203.0.113.10"]).0, "not after disassociate-address")
        // A rogue DHCP server on an instance VLAN: a1 (on n1, VLAN web) runs its own dhcpd answering anyone. Its
        // offers go out tagged through n1's NIC; --dhcp names it on VID web, seen by the front end and n2.
        try """
            ddns-update-style none;
            subnet 10.20.2.0 netmask 255.255.255.192 { range 10.20.2.50 10.20.2.60; }

            """.write(toFile: cluster.sharePath("n1", "rogue.conf"), atomically: true, encoding: .utf8)
        try cluster.run("n1", "touch /tmp/rogue.leases && ip netns exec i\(a1.hexDigits) /usr/sbin/dhcpd -4 -q -cf /vnet-vm/rogue.conf -lf /tmp/rogue.leases -pf /tmp/rogue.pid eth0")
        let rogueCheck = try verify("--managed --dhcp")
        let dhcpReport = try #require(rogueCheck.result.dhcp)
        let a1MAC = MACPrefix.eucalyptusDefault.mac(for: a1).description
        let rogue = dhcpReport.servers.first { $0.mac == a1MAC }
        #expect(rogueCheck.status == 1 && rogue?.vlan == web && rogue?.rogue == true, "\(dhcpReport.servers)")
        let seenBy = Set(rogue?.seenBy ?? [])
        #expect(seenBy.isSuperset(of: ["fe", "n2"]), "through the filtering NIC of fe and the other of n2: \(seenBy)")
        #expect(dhcpReport.findings.contains { $0.hasPrefix("VID \(web): a DHCP server other than the front end's offers addresses to unknown clients: \(a1MAC)") },
                "\(dhcpReport.findings)")
        #expect(!dhcpReport.servers.contains { $0.rogue && $0.mac != a1MAC }, "only a1 is rogue: \(dhcpReport.servers)")
        Self.figure("verify-vlan --managed --dhcp, a rogue dhcpd on VLAN \(web): \(rogueCheck.seconds)")
        try cluster.run("n1", "kill $(cat /tmp/rogue.pid)")

        Self.figure("MANAGED checks after the VMs were up: \(since(clock))")
    }
}
