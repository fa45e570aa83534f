import Foundation

/// A real PostgreSQL server of Debian's postgresql-15 (installed by deploy/install-deps.sh), made with initdb
/// in a scratch directory and listening on 127.0.0.1 only, for the tests and benchmarks of the PostgreSQL
/// store. It runs as the `postgres` user (initdb refuses root) with trust authentication on loopback, and is
/// stopped (immediate) and removed when released.
public final class ScratchPostgres {
    public static let binaries = "/usr/lib/postgresql/15/bin"
    public let directory: String
    public let port: Int
    /// The address it listens on, and the network namespace it runs in (nil: the host's).
    public let host: String
    public let namespace: String?
    public var data: String { "\(directory)/data" }
    public var url: String { "postgresql://vnet@\(host):\(port)/vnet" }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `namespace`: run the server in this network namespace (`ip netns exec`), listening on `host` there.
    public init(host: String = "127.0.0.1", namespace: String? = nil) throws {
        self.host = host
        self.namespace = namespace
        guard FileManager.default.isExecutableFile(atPath: "\(Self.binaries)/initdb") else {
            throw Failure(description: "\(Self.binaries)/initdb is missing: run deploy/install-deps.sh (postgresql-15)")
        }
        guard getuid() == 0 else { throw Failure(description: "starting PostgreSQL as the postgres user needs root") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-pg-\(UUID().uuidString.prefix(8))").path
        port = namespace == nil ? try Self.freePort() : 5432
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.run("/bin/chown", ["postgres:postgres", directory])
        try asPostgres("initdb", ["-D", data, "-U", "vnet", "-A", "trust", "--no-instructions", "-E", "UTF8", "--locale", "C"])
        if host != "127.0.0.1" {
            // The test's own network (its namespaces' /24), trusted as loopback is: nothing else reaches it.
            let prefix = host.split(separator: ".").prefix(3).joined(separator: ".")
            let hba = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(data)/pg_hba.conf"))
            hba.seekToEndOfFile()
            hba.write(Data("host all all \(prefix).0/24 trust\n".utf8))
            try hba.close()
        }
        try start()
        try asPostgres("createdb", ["-h", host, "-p", String(port), "-U", "vnet", "vnet"])
    }

    deinit {
        try? stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts the server (again) and waits until it takes connections.
    public func start() throws {
        try asPostgres("pg_ctl", ["-D", data, "-l", "\(directory)/server.log", "-w", "-t", "30", "-o",
                                  "-p \(port) -k \(directory) -c listen_addresses=\(host) -c fsync=on -c max_connections=200", "start"])
    }

    /// `fast` (clients cut, clean shutdown) or `immediate` (as a crash).
    public func stop(mode: String = "fast") throws {
        let pidFile = "\(data)/postmaster.pid"
        guard FileManager.default.fileExists(atPath: pidFile) else { return }
        do { try asPostgres("pg_ctl", ["-D", data, "-m", mode, "-w", "stop"]) } catch {
            // Its namespace may be gone already: the server is still a process of this host.
            guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = Int32(text.prefix { $0 != "\n" }) else { throw error }
            kill(pid, SIGKILL)
            try? FileManager.default.removeItem(atPath: pidFile)
        }
    }

    /// One statement through psql, as the operator would run it; its output.
    @discardableResult
    public func psql(_ sql: String) throws -> String {
        try Self.run(namespace == nil ? "\(Self.binaries)/psql" : "/usr/bin/ip", (namespace.map { ["netns", "exec", $0, "\(Self.binaries)/psql"] } ?? []) + ["-h", host, "-p", String(port), "-U", "vnet", "-d", "vnet", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    func asPostgres(_ tool: String, _ arguments: [String]) throws {
        let command = ["/usr/sbin/runuser", "-u", "postgres", "--", "\(Self.binaries)/\(tool)"] + arguments
        if let namespace { try Self.run("/usr/bin/ip", ["netns", "exec", namespace] + command) } else { try Self.run(command[0], Array(command.dropFirst())) }
    }

    /// posix_spawn and waitpid, output to a file: `pg_ctl start` leaves a server behind that Foundation's
    /// Process waits on for ever.
    @discardableResult
    static func run(_ path: String, _ arguments: [String]) throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-pg-out-\(UUID().uuidString.prefix(8))").path
        defer { unlink(output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure(description: "cannot start \(path): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0, code = (status >> 8) & 0xff
        guard exited, code == 0 else {
            throw Failure(description: "\(([path] + arguments).joined(separator: " ")) failed (\(exited ? "exit \(code)" : "signal \(status & 0x7f)")): \(text)")
        }
        return text
    }

    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound else { throw Failure(description: "bind: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
