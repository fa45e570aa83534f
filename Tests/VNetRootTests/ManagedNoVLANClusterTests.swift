import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// MANAGED-NOVLAN end to end on real kernel objects: a switch namespace joins a front end and two nodes; the
/// real coordinator and agents (`--backend linux`) run in them; three instance namespaces hang off the nodes'
/// bridges through veths (the hypervisor's vifs), get their addresses from the project's dhcpd, and ping each
/// other as the groups' rules allow. The control plane uses a management network (10.99.0.0/24) that exists
/// only on the switch of this test.
@Suite("MANAGED-NOVLAN cluster in namespaces", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct ManagedNoVLANClusterTests {
    final class Cluster {
        let switchNS: ScratchNamespace, frontEnd: ScratchNamespace, outside: ScratchNamespace
        var nodes: [String: ScratchNamespace] = [:]
        var instances: [String: ScratchNamespace] = [:]
        let directory: String
        var processes: [Process] = []

        func runner(_ namespace: ScratchNamespace) -> ProcessRunner { ProcessRunner(prefix: ["ip", "netns", "exec", namespace.name]) }
        func sh(_ namespace: ScratchNamespace, _ command: String) throws { _ = try runner(namespace).run(command.split(separator: " ").map(String.init), input: nil) }

        init(nodeNames: [String]) throws {
            switchNS = try ScratchNamespace()
            frontEnd = try ScratchNamespace()
            outside = try ScratchNamespace()
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-novlan-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try sh(switchNS, "ip link add sw type bridge")
            try sh(switchNS, "ip link set sw up")
            func plug(_ namespace: ScratchNamespace, port: String) throws {
                try sh(switchNS, "ip link add \(port) type veth peer name eth0 netns \(namespace.name)")
                try sh(switchNS, "ip link set \(port) master sw")
                try sh(switchNS, "ip link set \(port) up")
                try sh(namespace, "ip link set lo up")
                try sh(namespace, "ip link set eth0 up")
            }
            try plug(frontEnd, port: "p-fe")
            // "The outside world": a host on the same wire with an address of the documentation range, routing
            // the cluster's public addresses to the front end (as an upstream router would).
            try plug(outside, port: "p-out")
            try sh(outside, "ip address add 203.0.113.100/24 dev eth0")
            try sh(outside, "ip route add 10.99.0.0/24 dev eth0")  // to answer the front end's own address
            // The front end's upstream: its public side reaches the outside host directly on the wire.
            try sh(frontEnd, "ip route add 203.0.113.96/28 dev eth0")
            try sh(frontEnd, "ip address add 10.99.0.1/24 dev eth0")
            // Forwarding is left off: the front end's agent turns it on itself.
            for (index, name) in nodeNames.enumerated() {
                let namespace = try ScratchNamespace()
                nodes[name] = namespace
                try plug(namespace, port: "p-\(name)")
                try sh(namespace, "ip link add br0 type bridge")
                try sh(namespace, "ip link set eth0 master br0")
                try sh(namespace, "ip link set br0 up")
                try sh(namespace, "ip address add 10.99.0.\(11 + index)/24 dev br0")
            }
            try NamespaceFixtures.writeNoVLANConfigs(in: directory, publicIPs: "203.0.113.10-203.0.113.12")
        }

        deinit {
            for process in processes where process.isRunning { process.terminate(); process.waitUntilExit() }
            // dhcpd and dhclient run detached; their namespaces go with ScratchNamespace, the processes here.
            for name in ["dhcpd", "dhclient"] {
                for pid in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where pid.hasSuffix(".pid") && pid.contains(name) {
                    if let text = try? String(contentsOfFile: "\(directory)/\(pid)", encoding: .utf8), let number = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(number, SIGTERM) }
                }
            }
            if let text = try? String(contentsOfFile: "\(directory)/fe-agent/dhcpd/dhcpd.pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(pid, SIGTERM) }
            try? FileManager.default.removeItem(atPath: directory)
        }

        func start(_ namespace: ScratchNamespace, _ name: String, _ program: String, _ arguments: [String]) throws {
            processes.append(try NamespaceFixtures.launch(program, arguments, in: namespace, log: "\(directory)/\(name).log"))
        }

        func vnetctl(_ arguments: [String]) throws -> String {
            String(decoding: try runner(frontEnd).run([NamespaceFixtures.binaries.appendingPathComponent("vnetctl").path] + arguments
                                                      + ["--coordinator", "10.99.0.1:7460", "--insecure"], input: nil), as: UTF8.self)
        }

        /// An instance: a namespace whose eth0 is the peer of the hypervisor's vif `vm<hex>` on the node.
        func makeInstance(_ id: InstanceID, on node: String) throws -> String {
            let namespace = try ScratchNamespace()
            instances[id.description] = namespace
            let vif = "vm" + id.hexDigits
            try sh(nodes[node]!, "ip link add \(vif) type veth peer name eth0 netns \(namespace.name)")
            try sh(nodes[node]!, "ip link set \(vif) up")
            try sh(namespace, "ip link set lo up")
            try sh(namespace, "ip link set eth0 address \(MACPrefix.eucalyptusDefault.mac(for: id))")
            try sh(namespace, "ip link set eth0 up")
            return vif
        }

        /// dhclient in the instance; its script sets the address and the default route it was given.
        func dhcp(_ id: InstanceID) throws -> String {
            let script = "\(directory)/dhclient-script"
            if !FileManager.default.fileExists(atPath: script) {
                try """
                #!/bin/sh
                case "$reason" in BOUND|REBOOT|RENEW|REBIND)
                  ip address add "$new_ip_address/$new_subnet_mask" dev "$interface"
                  ip route replace default via "$new_routers" dev "$interface"
                  echo "$new_ip_address" > "\(directory)/$interface-$new_ip_address.bound";;
                esac

                """.write(toFile: script, atomically: true, encoding: .utf8)
                chmod(script, 0o755)
            }
            let namespace = instances[id.description]!
            _ = try runner(namespace).run(["timeout", "30", "dhclient", "-4", "-1", "-sf", script, "-pf", "\(directory)/dhclient-\(id).pid",
                                           "-lf", "\(directory)/dhclient-\(id).leases", "eth0"], input: nil)
            let addresses = try LinkObservation.addresses(fromJSON: try runner(namespace).run(["ip", "-json", "address", "show", "dev", "eth0"], input: nil))
            return addresses.first?.address.description ?? ""
        }

        func ping(from id: InstanceID, _ address: String) -> Bool {
            (try? runner(instances[id.description]!).run(["ping", "-c", "1", "-W", "1", address], input: nil)) != nil
        }

        func log(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "" }

        /// Pings from `namespace`: count sent, count received.
        func pingCount(_ namespace: ScratchNamespace, _ address: String, count: Int, interval: String = "0.2") -> (Int, Int) {
            let output = (try? runner(namespace).run(["ping", "-n", "-q", "-c", String(count), "-i", interval, "-W", "1", address], input: nil))
                ?? []
            let text = String(decoding: output, as: UTF8.self)
            guard let line = text.split(separator: "\n").first(where: { $0.contains("packets transmitted") }) else { return (count, 0) }
            let numbers = line.split(separator: " ").compactMap { Int($0) }
            return numbers.count >= 2 ? (numbers[0], numbers[1]) : (count, 0)
        }
    }

    @Test func groupsIsolateUntilAuthorizedAndDHCPGivesEveryInstanceItsAddress() throws {
        let cluster = try Cluster(nodeNames: ["n1", "n2"])
        try cluster.start(cluster.frontEnd, "coordinator", "vnet-coordinator", ["--config", "\(cluster.directory)/fe.conf", "--state-dir", "\(cluster.directory)/coordinator",
                                                                             "--listen", "10.99.0.1:7460", "--insecure", "--frontend", "fe"])
        Thread.sleep(forTimeInterval: 0.5)
        try cluster.start(cluster.frontEnd, "fe-agent", "vnet-agent", ["--role", "frontend", "--config", "\(cluster.directory)/fe.conf", "--coordinator", "10.99.0.1:7460",
                                                                      "--node-id", "fe", "--state-dir", "\(cluster.directory)/fe-agent", "--insecure", "--backend", "linux"])
        for name in ["n1", "n2"] {
            try cluster.start(cluster.nodes[name]!, "\(name)-agent", "vnet-agent", ["--config", "\(cluster.directory)/node.conf", "--coordinator", "10.99.0.1:7460",
                                                                                   "--node-id", name, "--state-dir", "\(cluster.directory)/\(name)-agent", "--insecure", "--backend", "linux"])
        }
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, (try? cluster.vnetctl(["nodes"]))?.components(separatedBy: " UP ").count != 4 { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try cluster.vnetctl(["nodes"]).components(separatedBy: " UP ").count == 4, "\(cluster.log("coordinator").suffix(1500))")

        _ = try cluster.vnetctl(["create-group", "--group", "web"])
        _ = try cluster.vnetctl(["create-group", "--group", "db"])
        let a1 = InstanceID("i-0000a001")!, a2 = InstanceID("i-0000a002")!, b1 = InstanceID("i-0000b001")!
        for (id, node, group) in [(a1, "n1", "web"), (a2, "n2", "web"), (b1, "n2", "db")] {
            let vif = try cluster.makeInstance(id, on: node)
            _ = try cluster.vnetctl(["run-instance", "--id", id.description, "--node", node, "--group", group, "--vif", vif, "--wait", "--wait-timeout", "10"])
        }
        let addressA1 = try cluster.dhcp(a1), addressA2 = try cluster.dhcp(a2), addressB1 = try cluster.dhcp(b1)
        #expect([addressA1, addressA2, addressB1] == ["10.20.0.2", "10.20.0.3", "10.20.0.66"],
                "DHCP: \(addressA1) \(addressA2) \(addressB1)\n\(cluster.log("fe-agent").suffix(1500))")

        #expect(cluster.ping(from: a1, addressA2), "same group, two nodes: reachable")
        #expect(!cluster.ping(from: a1, addressB1), "another group: not reachable before authorize")
        _ = try cluster.vnetctl(["authorize", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(cluster.ping(from: a1, addressB1), "reachable once db authorizes icmp from web")
        _ = try cluster.vnetctl(["revoke", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"])
        #expect(!cluster.ping(from: a1, addressB1), "not reachable after revoke")

        // Public IPs. The outside answers pings only from 203.0.113.10, so a reply proves the source address.
        _ = try cluster.vnetctl(["authorize", "--group", "web", "--protocol", "icmp", "--source-cidr", "0.0.0.0/0", "--wait"])
        try cluster.sh(cluster.outside, "iptables -w -A INPUT -p icmp --icmp-type echo-request ! -s 203.0.113.10 -j DROP")
        #expect(!cluster.ping(from: a1, "203.0.113.100"), "without a public IP the instance leaves masqueraded (as 10.99.0.1), and the outside drops it")
        try cluster.sh(cluster.outside, "iptables -w -I INPUT 1 -p icmp --icmp-type echo-request -s 10.99.0.1 -j ACCEPT")
        #expect(cluster.ping(from: a1, "203.0.113.100"), "...and it did leave, masqueraded: the outside accepts the front end's address")
        try cluster.sh(cluster.outside, "iptables -w -D INPUT -p icmp --icmp-type echo-request -s 10.99.0.1 -j ACCEPT")
        _ = try cluster.vnetctl(["allocate-address", "--address", "203.0.113.10"])
        _ = try cluster.vnetctl(["associate-address", "--address", "203.0.113.10", "--instance", a1.description, "--wait"])
        #expect(cluster.pingCount(cluster.outside, "203.0.113.10", count: 1).1 == 1, "the outside reaches the instance through its public IP")
        #expect(cluster.ping(from: a1, "203.0.113.100"), "the instance's traffic leaves with its public IP as source")
        _ = try cluster.vnetctl(["disassociate-address", "--address", "203.0.113.10", "--wait"])
        #expect(cluster.pingCount(cluster.outside, "203.0.113.10", count: 1).1 == 0, "not after disassociate-address")

        // The data plane does not depend on the control plane: pings go on through an agent's kill -9 and
        // restart, and with the coordinator stopped.
        let n1Agent = cluster.processes.first { $0.arguments?.contains("n1") == true && $0.arguments?.contains("--role") == false }!
        let pinger = Process()
        pinger.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        pinger.arguments = ["netns", "exec", cluster.instances[a1.description]!.name, "ping", "-n", "-q", "-c", "20", "-i", "0.1", "-W", "1", addressA2]
        let pingOutput = Pipe()
        pinger.standardOutput = pingOutput
        try pinger.run()
        Thread.sleep(forTimeInterval: 0.3)
        kill(n1Agent.processIdentifier, SIGKILL)
        n1Agent.waitUntilExit()
        try cluster.start(cluster.nodes["n1"]!, "n1-agent-again", "vnet-agent", ["--config", "\(cluster.directory)/node.conf", "--coordinator", "10.99.0.1:7460",
                                                                                "--node-id", "n1", "--state-dir", "\(cluster.directory)/n1-agent", "--insecure", "--backend", "linux"])
        let summary = String(decoding: pingOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        pinger.waitUntilExit()
        #expect(summary.contains("20 packets transmitted, 20 received"), "pings lost through an agent restart: \(summary)")
        let coordinator = cluster.processes.first { $0.arguments?.contains("vnet-coordinator") == true || ($0.arguments ?? []).contains { $0.hasSuffix("vnet-coordinator") } }!
        coordinator.terminate()
        coordinator.waitUntilExit()
        #expect(cluster.pingCount(cluster.instances[a1.description]!, addressA2, count: 5, interval: "0.1") == (5, 5), "instances keep talking without the coordinator")
    }
}
