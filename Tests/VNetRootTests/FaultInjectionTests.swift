import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// What goes wrong in production, done to the namespace cluster on purpose: a node's link cut, the coordinator
/// and the agents killed in loops, dhcpd killed, the coordinator's disk full or read-only. Each test says what
/// must hold afterwards, and checks it on the kernel objects and the stored state, not only in the logs.
@Suite("fault injection in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct FaultInjectionTests {
    struct NodeView: Decodable { var id: String; var state: String; var desiredRevision: UInt64; var appliedRevision: UInt64 }
    struct InstanceView: Decodable { var id: String; var ip: String?; var mac: String }

    static func nodes(_ cluster: NamespaceCluster) -> [String: NodeView] {
        guard let text = try? cluster.vnetctl(["nodes", "--json"]),
              let list = try? JSONDecoder().decode([NodeView].self, from: Data(text.utf8)) else { return [:] }
        return Dictionary(uniqueKeysWithValues: list.map { ($0.id, $0) })
    }

    static func instances(_ cluster: NamespaceCluster) throws -> [InstanceView] {
        try JSONDecoder().decode([InstanceView].self, from: Data(try cluster.vnetctl(["describe-instances", "--json"]).utf8))
    }

    static func waitUntil(_ seconds: Double, _ what: String, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        Issue.record("timed out after \(seconds) s waiting until \(what)")
        return false
    }

    /// The node's links as the kernel numbers them: a link deleted and made again gets a new ifindex.
    static func links(_ cluster: NamespaceCluster, _ namespace: ScratchNamespace) throws -> [String: String] {
        try cluster.links(namespace).mapValues { "#\($0.index) master=\($0.master ?? "-") up=\($0.isUp)" }
    }

    // MARK: a node's link cut and restored

    @Test func aNodeCutOffIsDownThenConvergesToTheLatestRevisionWhenItsLinkComesBack() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        try cluster.sh(cluster.switchNS, "ip link set p-n1 down")
        guard Self.waitUntil(10, "n1 is DOWN", { Self.nodes(cluster)["n1"]?.state == "DOWN" }) else { return }

        // Changes for n1 while it cannot hear them.
        let a1 = InstanceID("i-0000f001")!, a2 = InstanceID("i-0000f002")!
        for id in [a1, a2] {
            let vif = try cluster.makeInstance(id, on: "n1")
            _ = try cluster.vnetctl(["run-instance", "--id", id.description, "--node", "n1", "--group", "web", "--vif", vif])
        }
        let desired = try #require(Self.nodes(cluster)["n1"]?.desiredRevision)
        #expect(Self.nodes(cluster)["n1"]?.appliedRevision ?? 0 < desired, "n1 did not get the change while cut off")
        #expect(try Self.links(cluster, cluster.nodes["n1"]!)["vm0000f001"]?.contains("master=br0") == false)

        // The agent's side notices too (it counts its own silence; the link must stay cut until it has).
        _ = Self.waitUntil(10, "n1's agent noticed the silence") { cluster.log("n1-agent").contains("coordinator silent") }

        // Nobody acts but the link.
        try cluster.sh(cluster.switchNS, "ip link set p-n1 up")
        _ = Self.waitUntil(30, "n1 is UP and at revision \(desired)") {
            let node = Self.nodes(cluster)["n1"]
            return node?.state == "UP" && node?.appliedRevision == desired
        }
        let links = try Self.links(cluster, cluster.nodes["n1"]!)
        #expect(links["vm0000f001"]?.contains("master=br0") == true && links["vm0000f002"]?.contains("master=br0") == true, "\(links)")
        #expect(try cluster.dhcp(a1) == "10.20.2.2", "the front end's dhcpd serves the instance made while n1 was cut off")
        #expect(cluster.log("n1-agent").contains("coordinator silent"), "the agent noticed")
    }

    // MARK: the coordinator killed in a loop while requests arrive

    final class Outcomes: @unchecked Sendable {
        let lock = NSLock()
        var acknowledged: Set<String> = []
        var alreadyThere: Set<String> = []
        var retries = 0
        var asked: [String] = []
        var stop = false
        var done = false
        func with<T>(_ body: (Outcomes) -> T) -> T { lock.withLock { body(self) } }
    }

    @Test func theCoordinatorKilledInALoopLosesAndDuplicatesNoAllocation() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["create-group", "--group", "db"])
        _ = try cluster.vnetctl(["create-group", "--group", "app"])
        let outcomes = Outcomes()
        let namespace = cluster.frontEnd.name, directory = cluster.directory
        // An operator's script, making instances until told to stop: each request is made until it has an
        // answer: done, or "already exists" (it was committed, and the reply was lost with the coordinator).
        let requester = Thread {
            for number in 1...180 {  // three groups of 61 addresses
                if outcomes.with({ $0.stop }) { break }
                let id = String(format: "i-0000c%03x", number)
                outcomes.with { $0.asked.append(id) }
                let arguments = ["run-instance", "--id", id, "--node", number % 2 == 0 ? "n1" : "n2", "--group", ["web", "db", "app"][number % 3], "--timeout", "2"]
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline {
                    guard let result = try? NamespaceCluster.vnetctlResult(arguments, namespace: namespace, directory: directory) else { continue }
                    if result.status == 0 { outcomes.with { $0.acknowledged.insert(id) }; break }
                    if result.errors.contains("instance \(id) already exists") { outcomes.with { $0.alreadyThere.insert(id) }; break }
                    outcomes.with { $0.retries += 1 }
                    Thread.sleep(forTimeInterval: 0.2)
                }
            }
            outcomes.with { $0.done = true }
        }
        requester.start()
        var kills = 0
        while kills < 6, !outcomes.with({ $0.done }) {
            Thread.sleep(forTimeInterval: 0.7)
            cluster.kill9(cluster.coordinator)
            if !outcomes.with({ $0.done }) { kills += 1 }  // counted only while requests were still being made
            Thread.sleep(forTimeInterval: 0.3)
            try cluster.startCoordinator()
        }
        outcomes.with { $0.stop = true }
        _ = Self.waitUntil(120, "every request has its answer") { outcomes.with { $0.done } }
        let (asked, acknowledged, alreadyThere, retries) = outcomes.with { ($0.asked, $0.acknowledged, $0.alreadyThere, $0.retries) }
        let ids = asked
        // Requests sent while the coordinator is down wait in ZeroMQ's queue and are answered by the next one;
        // only a request caught inside a dying coordinator times out and is made again (retries).
        #expect(kills == 6 && ids.count >= 10, "the kills overlapped the requests: \(kills) kills during \(ids.count) requests, \(retries) retries")
        #expect(acknowledged.union(alreadyThere) == Set(ids), "every request ended with an answer")

        // What the store holds, after one more kill and restart: every instance once, no address or MAC twice.
        cluster.kill9(cluster.coordinator)
        try cluster.startCoordinator()
        _ = Self.waitUntil(15, "the coordinator answers") { (try? cluster.vnetctl(["status"])) != nil }
        let instances = try Self.instances(cluster)
        #expect(Set(instances.map(\.id)) == Set(ids), "no acknowledged allocation lost, none invented")
        #expect(instances.count == ids.count)
        #expect(Set(instances.compactMap(\.ip)).count == ids.count, "no address given twice: \(instances.map { "\($0.id) \($0.ip ?? "-")" })")
        #expect(Set(instances.map(\.mac)).count == ids.count, "no MAC given twice")
        // And the nodes converge on it.
        _ = Self.waitUntil(30, "every host applied its latest revision") {
            let nodes = Self.nodes(cluster)
            return nodes.count == 3 && nodes.values.allSatisfy { $0.state == "UP" && $0.appliedRevision == $0.desiredRevision }
        }
    }

    // MARK: an agent killed in a loop

    @Test func agentsKilledInALoopLeaveTheDataPlaneUntouched() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1", "n2"])
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        let a1 = InstanceID("i-0000e001")!, a2 = InstanceID("i-0000e002")!
        for (id, node) in [(a1, "n1"), (a2, "n2")] { try cluster.launchInstance(id, on: node, group: "web") }
        let address2 = try cluster.dhcp(a2)
        _ = try cluster.dhcp(a1)
        let linksBefore = try Self.links(cluster, cluster.nodes["n1"]!)
        let frontBefore = try Self.links(cluster, cluster.frontEnd)
        let dhcpdBefore = cluster.frontEndDhcpdPID
        func vnetRules() throws -> [String] {
            String(decoding: try cluster.runner(cluster.frontEnd).run(["iptables-save"], input: nil), as: UTF8.self)
                .split(separator: "\n").filter { $0.contains("VNET") || $0.contains("vn-") }.map(String.init)
        }
        let rulesBefore = try vnetRules()

        // Pings across nodes all along: 10 s at 10 a second.
        let pings = try cluster.startPings(from: a1, to: address2, count: 100)
        for _ in 0..<4 {
            cluster.kill9(cluster.agent("n1"))
            Thread.sleep(forTimeInterval: 0.4)
            try cluster.startNodeAgent("n1")
            Thread.sleep(forTimeInterval: 0.8)
            cluster.kill9(cluster.agent("fe"))
            Thread.sleep(forTimeInterval: 0.4)
            try cluster.startFrontendAgent()
            Thread.sleep(forTimeInterval: 0.8)
        }
        let summary = pings.finish()
        #expect(summary.contains("100 packets transmitted, 100 received"), "no ping lost while agents died and came back: \(summary)")
        _ = Self.waitUntil(15, "every agent is back and in sync") {
            let nodes = Self.nodes(cluster)
            return nodes.count == 3 && nodes.values.allSatisfy { $0.state == "UP" && $0.appliedRevision == $0.desiredRevision }
        }
        #expect(try Self.links(cluster, cluster.nodes["n1"]!) == linksBefore, "n1's links: none made again, none moved")
        #expect(try Self.links(cluster, cluster.frontEnd) == frontBefore, "the front end's links likewise")
        #expect(dhcpdBefore != nil && cluster.frontEndDhcpdPID == dhcpdBefore, "dhcpd was not restarted")
        #expect(try vnetRules() == rulesBefore, "vnet's iptables rules are as they were")
        #expect(cluster.log("n1-agent").components(separatedBy: "starting; holding revision").count == 6, "five agent lives on n1")
    }

    // MARK: dhcpd killed

    @Test func aKilledDhcpdIsStartedAgainWithItsLeasesAndClientsKeepTheirAddresses() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1"])
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        let a1 = InstanceID("i-0000d0d1")!
        try cluster.launchInstance(a1, on: "n1", group: "web")
        let address = try cluster.dhcp(a1)
        #expect(address == "10.20.2.2")
        let dhcpdDirectory = "\(cluster.directory)/fe-agent/dhcpd"
        let leasesBefore = try String(contentsOfFile: "\(dhcpdDirectory)/dhcpd.leases", encoding: .utf8)
        let duid = try #require(leasesBefore.split(separator: "\n").first { $0.hasPrefix("server-duid") }, "dhcpd wrote its lease database")
        let pid = try #require(cluster.frontEndDhcpdPID)

        kill(pid, SIGKILL)  // a crash: no pid file removed, nothing flushed
        var restarted: Int32?
        // Within about a heartbeat (1 s), not at the next reconcile (10 s by default).
        _ = Self.waitUntil(3, "the agent starts dhcpd again") {
            guard let newPID = cluster.frontEndDhcpdPID, newPID != pid, DHCPDManager.isRunningDhcpd(newPID) else { return false }
            restarted = newPID
            return true
        }
        #expect(restarted != nil)
        // The agent logs the repair once its apply has returned, a moment after dhcpd's new pid file appears.
        let logged = Self.waitUntil(3, "the agent logs the repair") {
            cluster.log("fe-agent").contains("dhcpd was not running; started it again")
        }
        #expect(logged, "the repair is logged as drift: \(cluster.log("fe-agent"))")
        let leasesAfter = try String(contentsOfFile: "\(dhcpdDirectory)/dhcpd.leases", encoding: .utf8)
        #expect(leasesAfter.contains(duid), "the same lease database: dhcpd kept its identity")
        for line in leasesBefore.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            #expect(leasesAfter.contains(line), "kept: \(line)")
        }
        // The client asks again from scratch and gets the same address from the new dhcpd.
        if let text = try? String(contentsOfFile: "\(cluster.directory)/dhclient-\(a1).pid", encoding: .utf8), let client = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(client, SIGTERM)
        }
        try cluster.sh(cluster.instances[a1.description]!, "ip address flush dev eth0")
        #expect(try cluster.dhcp(a1) == address)
    }

    /// A dhcpd that will not start (here its binary refuses while a flag file exists) is the apply's `dhcpd`
    /// failure, logged once for its cause, not once a second; it is retried with back-off and started as soon as
    /// it can be (well before the regular reconcile).
    @Test func aDhcpdThatWillNotStartIsLoggedOnceAndStartedWhenItCan() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-dhcpd-wrapper-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let wrapper = "\(directory)/dhcpd", refuse = "\(directory)/refuse"
        try """
        #!/bin/sh
        # ISC dhcpd, except that starting it fails while \(refuse) exists (checking a config still works).
        if [ -e "\(refuse)" ] && [ "$1" != "-t" ]; then echo "dhcpd: refused by the test" >&2; exit 1; fi
        exec /usr/sbin/dhcpd "$@"

        """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        try NamespaceFixtures.writeNoVLANConfigs(in: directory)
        let config = try String(contentsOfFile: "\(directory)/fe.conf", encoding: .utf8).replacingOccurrences(of: "/usr/sbin/dhcpd", with: wrapper)
        let cluster = try NamespaceCluster(nodeNames: ["n1"], frontendConfig: config)
        cluster.agentArguments = ["--reconcile-interval", "6"]
        try cluster.startDaemons()
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        try cluster.launchInstance(InstanceID("i-0000d0e1")!, on: "n1", group: "web")
        let pid = try #require(cluster.frontEndDhcpdPID)

        FileManager.default.createFile(atPath: refuse, contents: nil)
        let failuresBefore = cluster.log("fe-agent").components(separatedBy: "not applied: dhcpd: failed").count
        kill(pid, SIGKILL)
        // Retries at 0.5, 1, 2 s... for 4 s: what is checked is that they are not logged again, so no line can be
        // waited for.
        Thread.sleep(forTimeInterval: 4)
        let agentLog: String = cluster.log("fe-agent")
        let failures = agentLog.components(separatedBy: "not applied: dhcpd: failed").count - failuresBefore
        let tail = String(agentLog.suffix(1500))
        #expect(failures == 1, "the cause logged once while it lasts: \(failures) \(tail)")
        #expect(cluster.log("fe-agent").contains("dhcpd: refused by the test"), "with dhcpd's own words")
        try FileManager.default.removeItem(atPath: refuse)
        _ = Self.waitUntil(5, "the agent's retry starts dhcpd once it can, before the 6 s reconcile") {
            guard let newPID = cluster.frontEndDhcpdPID else { return false }
            return newPID != pid && DHCPDManager.isRunningDhcpd(newPID)
        }
    }

    // MARK: the state database's directory full or read-only

    /// The state directory is an ext4 file system of its own on a loop device, so that it can fill up, and be
    /// turned read-only by the kernel as after a disk error (ext4's errors=remount-ro, triggered through
    /// /sys/fs/ext4/DEV/trigger_fs_error) while the coordinator has its database open.
    @Test func aFullOrReadOnlyStateDirectoryRefusesRequestsClearlyAndHalfWritesNothing() throws {
        let cluster = try NamespaceCluster(nodeNames: ["n1"])
        let state = "\(cluster.directory)/coordinator", image = "\(cluster.directory)/state.ext4"
        let root = ProcessRunner()
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = try root.run(["truncate", "-s", "16M", image], input: nil)
        _ = try root.run(["mkfs.ext4", "-q", "-F", image], input: nil)
        var loops: [String] = []
        defer {
            cluster.kill9(cluster.coordinator)
            _ = try? root.run(["umount", "-l", state], input: nil)
            for loop in loops { _ = try? root.run(["losetup", "-d", loop], input: nil) }
        }
        /// Attaches the image to a loop device of its own and mounts it on the state directory.
        func mount() throws {
            let loop = String(decoding: try root.run(["losetup", "-f", "--show", image], input: nil), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            loops.append(loop)
            // A loop device keeps a read-only flag someone set on it (blockdev --setro) across detach and reuse.
            _ = try root.run(["blockdev", "--setrw", loop], input: nil)
            _ = try root.run(["mount", "-o", "errors=remount-ro", loop, state], input: nil)
        }
        try mount()
        do { try cluster.startDaemons() } catch {
            Issue.record("coordinator log:\n\(cluster.log("coordinator").suffix(1500))")
            throw error
        }
        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["run-instance", "--id", "i-00000001", "--node", "n1", "--group", "web"])
        let revision = try cluster.vnetctl(["status", "--json"])

        // Full: requests are refused, saying why, once SQLite has no room left in its log.
        _ = try? root.run(["dd", "if=/dev/zero", "of=\(state)/filler", "bs=64k"], input: nil)
        var accepted: [String] = [], refusal = ""
        for number in 2...6 {
            let id = String(format: "i-%08x", number)
            let result = try cluster.vnetctlResult(["run-instance", "--id", id, "--node", "n1", "--group", "web"])
            if result.status == 0 { accepted.append(id); continue }
            refusal = result.errors
            break
        }
        #expect(refusal.contains("not committed to \(state)") && refusal.contains("the file system holding \(state) is full"), "a clear refusal: \(refusal)")
        #expect(Set(try Self.instances(cluster).map(\.id)) == Set(["i-00000001"] + accepted), "the refused request left nothing behind")
        if accepted.isEmpty { #expect(try cluster.vnetctl(["status", "--json"]) == revision, "the revision did not move") }

        // Room again: the next request takes the next address, as if the refused one had never been.
        _ = try root.run(["rm", "-f", "\(state)/filler"], input: nil)
        _ = try cluster.vnetctl(["run-instance", "--id", "i-000000a1", "--node", "n1", "--group", "web"])
        let afterFull = try Self.instances(cluster)
        #expect(afterFull.first { $0.id == "i-000000a1" }?.ip == "10.20.2.\(3 + accepted.count)", "\(afterFull)")

        // The kernel turns the file system read-only under the running coordinator.
        try "1".write(toFile: "/sys/fs/ext4/\(URL(fileURLWithPath: loops[0]).lastPathComponent)/trigger_fs_error", atomically: false, encoding: .utf8)
        let readOnly = try cluster.vnetctlResult(["run-instance", "--id", "i-000000b1", "--node", "n1", "--group", "web"])
        #expect(readOnly.status != 0)
        #expect(readOnly.errors.contains("not committed to \(state)") && readOnly.errors.contains("Read-only file system"), "\(readOnly.errors)")
        #expect(!(try Self.instances(cluster).map(\.id)).contains("i-000000b1"))
        #expect(try cluster.vnetctl(["describe-instances"]).contains("i-000000a1"), "reads go on")

        // Repaired (fsck) and mounted again: a restarted coordinator reads exactly what was acknowledged. On a
        // new loop device: the namespaces' processes (ip netns exec copies the mount table) may still hold the
        // old mount, and mounting the same device again would bring back its read-only superblock.
        cluster.kill9(cluster.coordinator)
        _ = try root.run(["umount", "-l", state], input: nil)
        _ = try? root.run(["e2fsck", "-f", "-y", image], input: nil)
        try mount()
        try cluster.startCoordinator()
        let answers = Self.waitUntil(15, "the coordinator answers") { (try? cluster.vnetctl(["status"])) != nil }
        guard answers else {
            let process = cluster.coordinator
            Issue.record("coordinator \(process?.isRunning == true ? "running" : "ended: \(process!.terminationReason == .uncaughtSignal ? "signal" : "exit") \(process!.terminationStatus)"); log:\n\(cluster.log("coordinator").suffix(1500))")
            return
        }
        #expect(Set(try Self.instances(cluster).map(\.id)) == Set(["i-00000001", "i-000000a1"] + accepted))
        _ = try cluster.vnetctl(["run-instance", "--id", "i-000000b1", "--node", "n1", "--group", "web"])
        #expect(try Self.instances(cluster).count == 3 + accepted.count)
    }
}

