import Foundation
import Testing
import VNetLinux

/// deploy/netns-cluster.sh, which the README's main command runs, driven as an operator would: up, instances,
/// pings as the rules allow, then `down` after the daemons were killed as in a crash.
@Suite("deploy/netns-cluster.sh", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct NetnsClusterScriptTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/netns-cluster.sh").path

    /// Runs the script; returns exit status and standard output. Through the project's runner (posix_spawn,
    /// nothing inherited): the daemons the script starts would keep a Foundation Process waiting for them.
    func cluster(_ arguments: [String], directory: String) throws -> (Int32, String) {
        let command = ["/usr/bin/env", "VNET_BIN=\(NamespaceFixtures.binaries.path)", "VNET_CLUSTER_DIR=\(directory)", "/bin/bash", Self.script] + arguments
        do {
            let output = try ProcessRunner().run(command, input: nil)
            return (0, String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            return (error.status, "")
        }
    }

    func clusterNamespaces() -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "list"]
        let output = Pipe()
        process.standardOutput = output
        try? process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text.split(separator: "\n").map { String($0.split(separator: " ")[0]) }.filter { $0.hasPrefix("vnc-") }
    }

    @Test func upInstancesPingsAndDownAfterACrash() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-script-\(UUID().uuidString.prefix(8))").path
        defer { _ = try? cluster(["down"], directory: directory) }
        #expect(try cluster(["up", "2"], directory: directory).0 == 0)
        #expect(try cluster(["vnetctl", "nodes"], directory: directory).1.components(separatedBy: " UP ").count == 4)
        #expect(try cluster(["vnetctl", "create-group", "--group", "web"], directory: directory).0 == 0)
        #expect(try cluster(["vnetctl", "create-group", "--group", "db"], directory: directory).0 == 0)
        let a1 = try cluster(["instance", "i-0000A001", "n1", "web"], directory: directory)
        let a2 = try cluster(["instance", "i-0000A002", "n2", "web"], directory: directory)
        let b1 = try cluster(["instance", "i-0000B001", "n2", "db"], directory: directory)
        #expect([a1.1, a2.1, b1.1] == ["10.20.2.2", "10.20.2.3", "10.20.2.66"], "\(a1) \(a2) \(b1)")
        #expect(try cluster(["ping", "i-0000A001", a2.1], directory: directory).0 == 0, "same group across nodes")
        #expect(try cluster(["ping", "i-0000A001", b1.1], directory: directory).0 != 0, "another group, no rule")
        #expect(try cluster(["vnetctl", "authorize", "--group", "db", "--protocol", "icmp", "--source-group", "web", "--wait"], directory: directory).0 == 0)
        #expect(try cluster(["ping", "i-0000A001", b1.1], directory: directory).0 == 0, "after authorize")

        // A crash: every daemon killed outright. `down` still finds and removes everything by name.
        for file in (try FileManager.default.contentsOfDirectory(atPath: directory)) where file.hasSuffix(".pid") {
            if let pid = Int32((try String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGKILL)
            }
        }
        #expect(!clusterNamespaces().isEmpty)
        #expect(try cluster(["down"], directory: directory).0 == 0)
        #expect(clusterNamespaces().isEmpty, "left behind: \(clusterNamespaces())")
        #expect(!FileManager.default.fileExists(atPath: directory))
    }
}
