import Foundation
import VNetLinux

/// What the namespace benchmarks share: commands in one `ip -batch` run, and removal of every namespace of
/// theirs by name prefix, which also cleans up after a crashed run.
enum Namespaces {
    /// `lines` in one `ip -batch` run, in `namespace` (nil: the current one).
    static func batch(_ namespace: String?, _ lines: [String]) throws {
        guard !lines.isEmpty else { return }
        _ = try ProcessRunner().run((namespace.map { ["ip", "-n", $0] } ?? ["ip"]) + ["-batch", "-"],
                                    input: Array((lines.joined(separator: "\n") + "\n").utf8))
    }

    /// A host of the benchmark's own: a scratch namespace holding `links` (ip -batch lines) and a scratch
    /// directory for the agent's records, both removed afterwards, also when `body` throws.
    static func scratchHost<T>(_ links: [String], _ body: (ProcessRunner, String) throws -> T) throws -> T {
        let namespace = "vnt-bench-\(UInt32.random(in: 0...UInt32.max))"
        let host = ProcessRunner()
        _ = try host.run(["ip", "netns", "add", namespace], input: nil)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(namespace).path
        defer {
            _ = try? host.run(["ip", "netns", "del", namespace], input: nil)
            try? FileManager.default.removeItem(atPath: directory)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try batch(namespace, links)
        return try body(ProcessRunner(prefix: ["ip", "netns", "exec", namespace]), directory)
    }

    static func named(_ prefix: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns"))?.filter { $0.hasPrefix(prefix) } ?? []
    }

    /// Kills what runs in them (not this process, which may have entered one) and deletes them.
    static func remove(prefix: String) {
        let runner = ProcessRunner()
        for namespace in named(prefix) {
            if let pids = try? runner.run(["ip", "netns", "pids", namespace], input: nil) {
                for pid in String(decoding: pids, as: UTF8.self).split(separator: "\n").compactMap({ Int32($0) }) where pid != getpid() { kill(pid, SIGKILL) }
            }
            _ = try? runner.run(["ip", "netns", "del", namespace], input: nil)
        }
    }
}
