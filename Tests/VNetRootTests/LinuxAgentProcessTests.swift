import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// The real daemons with the Linux backend, inside one namespace of the test's own: the coordinator and the
/// agent talk over the namespace's loopback, and the agent works on the namespace's links. The front end has
/// no agent here: its iptables and dhcpd are proven by the cluster suites (NamespaceCluster).
@Suite("vnet-agent --backend linux, end to end in a namespace", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct LinuxAgentProcessTests {
    final class Node {
        let namespace: ScratchNamespace
        let runner: ProcessRunner
        let directory: String
        var processes: [String: Process] = [:]

        init() throws {
            namespace = try ScratchNamespace()
            runner = ProcessRunner(prefix: ["ip", "netns", "exec", namespace.name])
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-linux-e2e-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for command in [["ip", "link", "set", "lo", "up"],
                            ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
                            ["ip", "link", "add", "br0", "type", "bridge"], ["ip", "link", "set", "eth0", "master", "br0"],
                            ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "br0", "up"]] {
                _ = try runner.run(command, input: nil)
            }
            try NamespaceFixtures.writeNoVLANConfigs(in: directory)
        }

        deinit {
            for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
            try? FileManager.default.removeItem(atPath: directory)
        }

        func start(_ name: String, _ program: String, _ arguments: [String], capabilities: [String]? = nil) throws {
            processes[name] = try NamespaceFixtures.launch(program, arguments, in: namespace, log: "\(directory)/\(name).log",
                                                           capabilities: capabilities)
        }

        func startCoordinator() throws {
            try start("coordinator", "vnet-coordinator", ["--config", "\(directory)/fe.conf", "--state-dir", "\(directory)/coordinator",
                                                          "--listen", "127.0.0.1:7460", "--insecure", "--frontend", "fe"])
        }

        func startAgent() throws {
            try start("agent", "vnet-agent", ["--config", "\(directory)/node.conf", "--coordinator", "127.0.0.1:7460", "--node-id", "node1",
                                              "--state-dir", "\(directory)/agent", "--insecure", "--backend", "linux", "--reconcile-interval", "1"],
                      capabilities: ["net_admin", "net_raw"])
        }

        func vnetctl(_ arguments: [String]) throws -> [UInt8] {
            try runner.run([NamespaceFixtures.binaries.appendingPathComponent("vnetctl").path] + arguments
                           + ["--coordinator", "127.0.0.1:7460", "--insecure"], input: nil)
        }

        func link(_ name: String) throws -> ObservedLink? {
            try LinkObservation.links(fromJSON: try runner.run(["ip", "-json", "-details", "link", "show"], input: nil)).first { $0.name == name }
        }

        func log(_ name: String) -> String { (try? String(contentsOfFile: "\(directory)/\(name).log", encoding: .utf8)) ?? "" }

        func waitUntil(_ seconds: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if (try? condition()) == true { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            Issue.record("timed out waiting until \(what)\n--- agent ---\n\(log("agent").suffix(2000))\n--- coordinator ---\n\(log("coordinator").suffix(1500))", sourceLocation: sourceLocation)
            throw Timeout()
        }
        struct Timeout: Error {}
    }

    /// The agent runs with CAP_NET_ADMIN and CAP_NET_RAW only, as its systemd unit confines it.
    @Test func instancesTapsSurviveAgentRestartsAndDriftIsRepaired() throws {
        let node = try Node()
        try node.startCoordinator()
        try node.waitUntil(10, "the coordinator listens") { FileManager.default.fileExists(atPath: "\(node.directory)/coordinator/endpoints.json") }
        try node.startAgent()
        try node.waitUntil(10, "node1 is registered") { String(decoding: try node.vnetctl(["nodes"]), as: UTF8.self).contains("node1") }
        _ = try node.vnetctl(["run-instance", "--id", "i-0000a001", "--node", "node1"])
        try node.waitUntil(10, "the instance's tap is on br0") { try node.link("vn-0000a001")?.master == "br0" }
        let tap = try #require(try node.link("vn-0000a001"))
        // The guest's MAC is d0:0d:00:00:a0:01; the tap, a port of br0, carries its host-side twin.
        #expect(tap.mac?.description == "fe:0d:00:00:a0:01" && tap.isUp && tap.kind == "tun", "\(tap)")

        // kill -9 and restart: nothing is recreated.
        let agent = try #require(node.processes["agent"])
        kill(agent.processIdentifier, SIGKILL)
        agent.waitUntilExit()
        try node.startAgent()
        try node.waitUntil(10, "the restarted agent is back in sync") {
            node.log("agent").components(separatedBy: "registered").count >= 3
        }
        // What is checked is that a reconcile (every second here) leaves the tap alone, which no line says:
        // one and a half intervals are waited out.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try node.link("vn-0000a001")?.index == tap.index, "the tap was recreated")

        // Drift: the tap taken off its bridge by hand is put back within the reconcile interval, and reported.
        _ = try node.runner.run(["ip", "link", "set", "dev", "vn-0000a001", "nomaster"], input: nil)
        try node.waitUntil(5, "the tap is back on br0") { try node.link("vn-0000a001")?.master == "br0" }
        try node.waitUntil(5, "the coordinator heard of the repair") { node.log("coordinator").contains("drift repaired") }

        _ = try node.vnetctl(["terminate-instance", "--id", "i-0000a001"])
        try node.waitUntil(10, "the tap is gone") { try node.link("vn-0000a001") == nil }
        #expect(try node.link("eth0")?.master == "br0", "the operator's port stays on br0")
    }
}
