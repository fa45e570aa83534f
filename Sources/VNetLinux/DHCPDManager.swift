import Foundation
import VNetCore
import VNetSystem

/// Runs ISC dhcpd for the front end: config written atomically after `dhcpd -t` accepted it, started on the
/// desired interfaces with its own lease and pid files, started again if it died. Never kill -9 as the
/// normal path: Eucalyptus did that on every change and raced dhcpd's pid file.
///
/// A change of hosts only (instances come and go) reaches the running dhcpd through OMAPI: each host removed
/// or added is sent over one authenticated connection, then the config is rewritten, so a restart gives the
/// same hosts; dhcpd keeps serving throughout (its pid does not change). Anything
/// else (subnets, options, interfaces, the key) restarts it with SIGTERM, as does an OMAPI exchange that
/// fails for any reason: that path always converges, it only costs the restart. Before every start the
/// hosts dhcpd recorded in its lease file for OMAPI changes are taken out (`DHCPDLeaseFile`), so what a
/// started dhcpd serves is its config.
///
/// The key is the agent's own (32 random bytes, `omapi.key`, mode 0600, kept across restarts so a running
/// dhcpd and a restarted agent agree); dhcpd.conf carries it and is 0600 too. dhcpd has no setting for the
/// address OMAPI listens on (it binds every address of its namespace, port `omapiPort`); the agent connects
/// to 127.0.0.1 and every request must be signed with the key, so another host can connect but not act.
public final class DHCPDManager {
    public struct Settings: Sendable {
        public var daemon = "/usr/sbin/dhcpd"   // VNET_DHCPDAEMON
        public var user: String?                 // VNET_DHCPUSER
        public var directory: String
        /// dhcpd's OMAPI port (7911, ISC's usual one); nil: no OMAPI, every change restarts dhcpd.
        public var omapiPort: UInt16? = 7911
        public init(directory: String) { self.directory = directory }
    }

    /// What one `apply` did.
    public enum Outcome: Sendable, Equatable {
        case unchanged
        /// Hosts changed in the running dhcpd over OMAPI.
        case hostsChanged(added: Int, removed: Int)
        /// dhcpd (re)started; `omapiFailure` says why OMAPI was not used when it would have been.
        case started(omapiFailure: String?)
    }

    /// What the running dhcpd serves, as far as this manager told it: its config's head (everything but
    /// the hosts), its interfaces and its hosts.
    struct Served {
        var head: String
        var interfaces: String
        var hosts: [DHCPDConfig.Host]
    }

    let runner: CommandRunner
    public let settings: Settings
    var confPath: String { "\(settings.directory)/dhcpd.conf" }
    var leasePath: String { "\(settings.directory)/dhcpd.leases" }
    var pidPath: String { "\(settings.directory)/dhcpd.pid" }
    var interfacesPath: String { "\(settings.directory)/dhcpd.interfaces" }
    var keyPath: String { "\(settings.directory)/omapi.key" }
    public private(set) var restarts = 0
    /// Host changes made over OMAPI (each added or removed host counts one).
    public private(set) var hostChanges = 0
    private var served: Served?

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

    /// Makes dhcpd serve `config`.
    @discardableResult
    public func apply(_ config: DHCPDConfig) throws -> Outcome {
        try FileManager.default.createDirectory(atPath: settings.directory, withIntermediateDirectories: true)
        let control = try self.control()
        let head = DHCPDConfRenderer.head(config, control: control)
        let interfaces = config.interfaces.joined(separator: " ")
        var omapiFailure: String?
        if runningPID != nil {
            // After an agent restart the config file is what the running dhcpd was last told.
            if served == nil { served = readServed() }
            if let served, served.head == head, served.interfaces == interfaces {
                if served.hosts == config.hosts { return .unchanged }
                if let control {
                    do { return try changeHosts(from: served.hosts, to: config, control: control) } catch { omapiFailure = "\(error)" }
                }
            }
        }
        try start(config, control: control)
        return .started(omapiFailure: omapiFailure)
    }

    /// The hosts changed in the running dhcpd: the removals and additions sent over OMAPI, then the config
    /// rewritten (rename: whole or not at all; no `dhcpd -t`, the head is the one dhcpd accepted and hosts
    /// are rendered from checked values). dhcpd first, because rendering and writing a large config takes
    /// longer than the exchange and an instance's address should not wait for it. A crash between the two
    /// leaves a config short of hosts dhcpd has, which only a start of dhcpd would act on, and dhcpd is only
    /// started by `apply`, which writes the config first: nothing is served that the config does not have.
    private func changeHosts(from old: [DHCPDConfig.Host], to config: DHCPDConfig, control: DHCPDControl) throws -> Outcome {
        let (removed, added) = Self.difference(from: old, to: config.hosts)
        served = nil  // until dhcpd has taken every change and the config says so
        let client = try OMAPIClient(port: control.port, secret: control.secret, in: runner.kernel)
        // Removals first: a host whose address went to another MAC is one removal and one addition, and a
        // MAC that moved to another address must leave its old entry before it is given a new one.
        let stillNamed = Set(added.map(\.declarationName))
        for host in removed where !stillNamed.contains(host.declarationName) { try client.remove(named: host.declarationName) }
        for host in added { try client.put(host) }
        hostChanges += removed.count + added.count
        try write(DHCPDConfRenderer.render(config, control: control), to: confPath)
        served = Served(head: DHCPDConfRenderer.head(config, control: control), interfaces: config.interfaces.joined(separator: " "), hosts: config.hosts)
        return .hostsChanged(added: added.count, removed: removed.count)
    }

    /// The hosts only in `old` and only in `new`. Both come sorted by address (the planner sorts them, and
    /// `served` keeps what was applied), so one merge pass does it without hashing 100 000 hosts; lists that
    /// are not strictly sorted are compared as sets.
    static func difference(from old: [DHCPDConfig.Host], to new: [DHCPDConfig.Host]) -> (removed: [DHCPDConfig.Host], added: [DHCPDConfig.Host]) {
        func strictlySorted(_ hosts: [DHCPDConfig.Host]) -> Bool { zip(hosts, hosts.dropFirst()).allSatisfy { $0.address < $1.address } }
        guard strictlySorted(old), strictlySorted(new) else {
            let before = Set(old), after = Set(new)
            return (before.subtracting(after).sorted(), after.subtracting(before).sorted())
        }
        var removed: [DHCPDConfig.Host] = [], added: [DHCPDConfig.Host] = []
        var i = 0, j = 0
        while i < old.count || j < new.count {
            if j == new.count || (i < old.count && old[i].address < new[j].address) { removed.append(old[i]); i += 1 }
            else if i == old.count || new[j].address < old[i].address { added.append(new[j]); j += 1 }
            else {
                if old[i].mac != new[j].mac { removed.append(old[i]); added.append(new[j]) }
                i += 1; j += 1
            }
        }
        return (removed, added)
    }

    /// The key OMAPI requests are signed with, made on first use; nil without OMAPI or without a real kernel.
    func control() throws -> DHCPDControl? {
        guard let port = settings.omapiPort, runner.kernel != .modelled else { return nil }
        if let data = FileManager.default.contents(atPath: keyPath), data.count == 32 { return DHCPDControl(port: port, secret: Array(data)) }
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        try write(Data(secret), to: keyPath)
        return DHCPDControl(port: port, secret: secret)
    }

    /// What the config file says dhcpd serves, if it is one this manager wrote (a head, then host
    /// declarations exactly as rendered); nil for anything else, which makes the next change a restart.
    func readServed() -> Served? {
        guard let text = try? String(contentsOfFile: confPath, encoding: .utf8),
              let interfaces = try? String(contentsOfFile: interfacesPath, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.firstIndex(where: { $0.hasPrefix("host ") }) else {
            return Served(head: text, interfaces: interfaces, hosts: [])
        }
        // The head ends with the blank line the renderer puts before the hosts.
        let head = lines[..<(first - 1)].joined(separator: "\n") + "\n"
        var hosts: [DHCPDConfig.Host] = []
        var index = first
        while index + 3 < lines.count {
            let hardware = lines[index + 1], fixed = lines[index + 2]
            guard hardware.hasPrefix("  hardware ethernet "), hardware.hasSuffix(";"), fixed.hasPrefix("  fixed-address "), fixed.hasSuffix(";"),
                  lines[index + 3] == "}",
                  let mac = MACAddress(hardware.dropFirst(20).dropLast()), let address = IPv4Address(fixed.dropFirst(16).dropLast()) else { return nil }
            let host = DHCPDConfig.Host(mac: mac, address: address)
            guard lines[index] == "host \(host.declarationName) {" else { return nil }
            hosts.append(host)
            index += 4
        }
        guard index == lines.count - 1, lines[index].isEmpty else { return nil }
        return Served(head: head, interfaces: interfaces, hosts: hosts)
    }

    /// Writes `config` (checked by dhcpd itself first: a config dhcpd refuses never replaces the one in
    /// place) and (re)starts dhcpd on it.
    private func start(_ config: DHCPDConfig, control: DHCPDControl?) throws {
        let text = DHCPDConfRenderer.render(config, control: control)
        let interfaces = config.interfaces.joined(separator: " ")
        let sameConfig = (try? String(contentsOfFile: confPath, encoding: .utf8)) == text
            && (try? String(contentsOfFile: interfacesPath, encoding: .utf8)) == interfaces
        if !sameConfig {
            let candidate = confPath + ".new"
            try write(text, to: candidate)
            do {
                _ = try runner.run([settings.daemon, "-t", "-q", "-cf", candidate], input: nil)
            } catch {
                try? FileManager.default.removeItem(atPath: candidate)
                throw error  // the running dhcpd and its config are left as they were
            }
            guard rename(candidate, confPath) == 0 else { throw CommandError(arguments: ["rename", candidate, confPath], status: errno, stderr: String(cString: strerror(errno))) }
            try write(interfaces, to: interfacesPath)
        }
        served = nil
        stop()
        // A pid file left by a dhcpd that died would make the new one refuse to start ("already running").
        if runningPID == nil { try? FileManager.default.removeItem(atPath: pidPath) }
        if let leases = try? String(contentsOfFile: leasePath, encoding: .utf8) {
            let kept = DHCPDLeaseFile.removingHostDeclarations(leases)
            if kept != leases { try write(kept, to: leasePath) }
        } else {
            FileManager.default.createFile(atPath: leasePath, contents: nil)
        }
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
        served = Served(head: DHCPDConfRenderer.head(config, control: control), interfaces: interfaces, hosts: config.hosts)
    }

    /// Files of this manager's are the agent's alone (dhcpd.conf holds the OMAPI key): mode 0600, replaced
    /// whole by rename.
    private func write(_ text: String, to path: String) throws { try write(Data(text.utf8), to: path) }

    private func write(_ data: Data, to path: String) throws {
        guard writeAtomically(data, to: path, permissions: 0o600) else {
            throw CommandError(arguments: ["write", path], status: errno, stderr: String(cString: strerror(errno)))
        }
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
