import Foundation
import VNetCore

/// Runs ISC dhcpd for the front end: config written atomically after `dhcpd -t` accepted it, started on the
/// desired interfaces with its own lease and pid files, restarted on change with SIGTERM (the lease file is
/// kept, so addresses handed out survive), started again if it died. Never kill -9 as the normal path:
/// Eucalyptus did that on every change and raced dhcpd's pid file.
public final class DHCPDManager {
    public struct Settings: Sendable {
        public var daemon = "/usr/sbin/dhcpd"   // VNET_DHCPDAEMON
        public var user: String?                 // VNET_DHCPUSER
        public var directory: String
        public init(directory: String) { self.directory = directory }
    }

    let runner: CommandRunner
    public let settings: Settings
    var confPath: String { "\(settings.directory)/dhcpd.conf" }
    var leasePath: String { "\(settings.directory)/dhcpd.leases" }
    var pidPath: String { "\(settings.directory)/dhcpd.pid" }
    var interfacesPath: String { "\(settings.directory)/dhcpd.interfaces" }
    public private(set) var restarts = 0

    public init(runner: CommandRunner, settings: Settings) {
        self.runner = runner
        self.settings = settings
    }

    /// The running dhcpd's pid, if the pid file names a live dhcpd: not a reused pid, and not a zombie (a
    /// killed daemon whose parent has not reaped it still answers kill(pid, 0)).
    public var runningPID: Int32? {
        guard let text = try? String(contentsOfFile: pidPath, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              Self.isRunningDhcpd(pid) else { return nil }
        return pid
    }

    /// Whether `pid` is a dhcpd that has not exited (a zombie has: it only waits for its parent to reap it,
    /// which in some containers never happens).
    public static func isRunningDhcpd(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0,
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"),
              stat[stat.index(after: open)..<close].hasPrefix("dhcpd") else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    public var stateDescription: String {
        runningPID.map { "running (pid \($0))" } ?? (FileManager.default.fileExists(atPath: confPath) ? "stopped" : "absent")
    }

    /// Makes dhcpd serve `config`. Returns true when it was (re)started.
    @discardableResult
    public func apply(_ config: DHCPDConfig) throws -> Bool {
        let text = DHCPDConfRenderer.render(config)
        let interfaces = config.interfaces.joined(separator: " ")
        let sameConfig = (try? String(contentsOfFile: confPath, encoding: .utf8)) == text
            && (try? String(contentsOfFile: interfacesPath, encoding: .utf8)) == interfaces
        if sameConfig, runningPID != nil { return false }
        try FileManager.default.createDirectory(atPath: settings.directory, withIntermediateDirectories: true)
        if !sameConfig {
            let candidate = confPath + ".new"
            try text.write(toFile: candidate, atomically: true, encoding: .utf8)
            do {
                _ = try runner.run([settings.daemon, "-t", "-q", "-cf", candidate], input: nil)
            } catch {
                try? FileManager.default.removeItem(atPath: candidate)
                throw error  // the running dhcpd and its config are left as they were
            }
            guard rename(candidate, confPath) == 0 else { throw CommandError(arguments: ["rename", candidate, confPath], status: errno, stderr: String(cString: strerror(errno))) }
            try interfaces.write(toFile: interfacesPath, atomically: true, encoding: .utf8)
        }
        stop()
        // A pid file left by a dhcpd that died would make the new one refuse to start ("already running").
        if runningPID == nil { try? FileManager.default.removeItem(atPath: pidPath) }
        if !FileManager.default.fileExists(atPath: leasePath) { FileManager.default.createFile(atPath: leasePath, contents: nil) }
        if let user = settings.user {
            // dhcpd drops to this user after start; it must be able to write its leases and pid.
            _ = try? runner.run(["chown", "\(user):\(user)", settings.directory, leasePath], input: nil)
        }
        // Not -q: what dhcpd says on failure is kept in the error.
        var arguments = [settings.daemon, "-cf", confPath, "-lf", leasePath, "-pf", pidPath]
        if let user = settings.user { arguments += ["-user", user, "-group", user] }
        _ = try runner.run(arguments + config.interfaces, input: nil)
        restarts += 1
        return true
    }

    /// Stops dhcpd gently: SIGTERM, then up to 5 s for it to go; SIGKILL only if it will not.
    public func stop() {
        guard let pid = runningPID else { return }
        kill(pid, SIGTERM)
        for _ in 0..<500 where Self.isRunningDhcpd(pid) { Thread.sleep(forTimeInterval: 0.01) }
        if Self.isRunningDhcpd(pid) { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: pidPath)
    }
}
