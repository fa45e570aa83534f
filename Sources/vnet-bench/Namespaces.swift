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
