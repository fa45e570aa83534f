import Foundation
import VNetCore
import VNetSystem

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

    /// The running daemon's pid, if the pid file names a live one: not a reused pid, and not a zombie (a
    /// killed daemon whose parent has not reaped it still answers kill(pid, 0)).
    public var runningPID: Int32? {
        guard let text = try? String(contentsOfFile: pidPath, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
              isOurDaemon(pid) else { return nil }
        return pid
    }

    /// Whether `pid` is the daemon this manager started and has not exited. It is recognised by its pid file
    /// and its command line naming our config file (what VNET_DHCPDAEMON was given), or by being a dhcpd: a
    /// wrapper script for another DHCP server (the document recommends one) runs under another name.
    func isOurDaemon(_ pid: Int32) -> Bool {
        guard Self.isLive(pid) else { return false }
        if Self.command(pid).hasPrefix("dhcpd") { return true }
        let arguments = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))).map { $0.split(separator: 0).map { String(decoding: $0, as: UTF8.self) } } ?? []
        return arguments.contains(confPath)
    }

    /// Whether `pid` is a dhcpd that has not exited (a zombie has: it only waits for its parent to reap it,
    /// which in some containers never happens).
    public static func isRunningDhcpd(_ pid: Int32) -> Bool { isLive(pid) && command(pid).hasPrefix("dhcpd") }

    static func isLive(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    /// The process's name as the kernel keeps it (`comm`, at most 15 characters).
    static func command(_ pid: Int32) -> String {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"), open < close else { return "" }
        return String(stat[stat.index(after: open)..<close])
    }

    /// VNET_DHCPUSER as this host knows it: its uid, and its primary group (dhcpd's `-group`; a user's group
    /// need not share its name).
    public struct DaemonUser: Sendable, Equatable {
        public var name: String, uid: uid_t, gid: gid_t, group: String
    }

    public static func lookUp(user name: String) throws(CommandError) -> DaemonUser {
        guard let entry = getpwnam(name) else {
            throw CommandError(arguments: ["getpwnam", name], status: 1,
                               stderr: "VNET_DHCPUSER '\(name)' is not a user on this host: create it (useradd --system \(name)) or change VNET_DHCPUSER; dhcpd was not started")
        }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        let group = getgrgid(gid).map { String(cString: $0.pointee.gr_name) } ?? String(gid)
        return DaemonUser(name: name, uid: uid, gid: gid, group: group)
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
            // The candidate is checked by dhcpd itself before it replaces the config (rename: never half a file).
            let candidate = confPath + ".new"
            guard writeAtomically(Data(text.utf8), to: candidate) else {
                throw CommandError(arguments: ["write", candidate], status: errno, stderr: String(cString: strerror(errno)))
            }
            do {
                _ = try runner.run([settings.daemon, "-t", "-q", "-cf", candidate], input: nil)
            } catch {
                try? FileManager.default.removeItem(atPath: candidate)
                throw error  // the running dhcpd and its config are left as they were
            }
            guard rename(candidate, confPath) == 0 else { throw CommandError(arguments: ["rename", candidate, confPath], status: errno, stderr: String(cString: strerror(errno))) }
            guard writeAtomically(Data(interfaces.utf8), to: interfacesPath) else {
                throw CommandError(arguments: ["write", interfacesPath], status: errno, stderr: String(cString: strerror(errno)))
            }
        }
        stop()
        // A pid file left by a dhcpd that died would make the new one refuse to start ("already running").
        if runningPID == nil { try? FileManager.default.removeItem(atPath: pidPath) }
        if !FileManager.default.fileExists(atPath: leasePath) { FileManager.default.createFile(atPath: leasePath, contents: nil) }
        var arguments = [settings.daemon, "-cf", confPath, "-lf", leasePath, "-pf", pidPath]
        if let name = settings.user {
            // dhcpd drops to this user after start; it must be able to write its leases and pid file, so its
            // directory and leases are the user's. A chown that fails is an error, not a dhcpd that cannot write.
            let user = try Self.lookUp(user: name)
            for path in [settings.directory, leasePath] where chown(path, user.uid, user.gid) != 0 {
                throw CommandError(arguments: ["chown", "\(user.uid):\(user.gid)", path], status: errno,
                                   stderr: "cannot give \(path) to VNET_DHCPUSER \(name): \(String(cString: strerror(errno)))")
            }
            arguments += ["-user", user.name, "-group", user.group]
        }
        // Not -q: what dhcpd says on failure is kept in the error.
        _ = try runner.run(arguments + config.interfaces, input: nil)
        restarts += 1
        return true
    }

    /// Stops dhcpd gently: SIGTERM, then up to 5 s for it to go; SIGKILL only if it will not.
    public func stop() {
        guard let pid = runningPID else { return }
        kill(pid, SIGTERM)
        for _ in 0..<500 where Self.isLive(pid) { Thread.sleep(forTimeInterval: 0.01) }
        if Self.isLive(pid) { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: pidPath)
    }
}
