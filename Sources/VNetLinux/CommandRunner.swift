import Foundation
import CSpawn

/// Runs one program with an argument list: never a shell, never a command line built from strings.
/// Everything the Linux backend does to the host goes through one of these, so tests can put a fake in its
/// place and a namespace lane can prefix `ip netns exec NS`.
public protocol CommandRunner: Sendable {
    func run(_ arguments: [String], input: [UInt8]?) throws(CommandError) -> [UInt8]
    /// The kernel the commands act on: what the backend reads from the kernel itself (netlink) must come from
    /// the same namespace as its commands, and not from the real kernel at all when they go to a model of one.
    var kernel: KernelNamespace { get }
}

/// Where a runner's commands take effect.
public enum KernelNamespace: Sendable, Equatable {
    /// This process's own network namespace.
    case current
    /// A named one (`ip netns exec NAME`, /run/netns/NAME).
    case named(String)
    /// No real kernel: a test's model answers the commands.
    case modelled

    /// The namespace file netlink sockets are opened in (nil: this process's own).
    var path: String? { if case .named(let name) = self { "/run/netns/\(name)" } else { nil } }
}

/// A command that could not run or exited non-zero: what was run, how it ended, what it said.
public struct CommandError: Error, Sendable, CustomStringConvertible {
    public var arguments: [String]
    public var status: Int32
    public var stderr: String
    /// What it printed before failing (a command may report on stdout and still exit non-zero).
    public var stdout: String = ""
    public init(arguments: [String], status: Int32, stderr: String, stdout: String = "") {
        self.arguments = arguments; self.status = status; self.stderr = stderr; self.stdout = stdout
    }
    public var description: String {
        "\(arguments.joined(separator: " ")) exited \(status): \(stderr.trimmingCharacters(in: .whitespacesAndNewlines))"
    }
}

/// The real runner: spawns the program (looked up in /usr/sbin, /usr/bin, /sbin, /bin) with LC_ALL=C so its
/// output and messages are in the form the parsers expect. `prefix` runs everything through another program,
/// for example `["ip", "netns", "exec", "ns1"]`.
public struct ProcessRunner: CommandRunner {
    public let prefix: [String]
    public init(prefix: [String] = []) { self.prefix = prefix }

    public var kernel: KernelNamespace {
        prefix.count == 4 && prefix[0...2] == ["ip", "netns", "exec"] ? .named(prefix[3]) : .current
    }

    static let searchPath = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// The program's path: as given when absolute, else found in `searchPath`.
    static func resolve(_ full: [String]) throws(CommandError) -> String {
        guard let program = full.first else { throw CommandError(arguments: full, status: -1, stderr: "no program given") }
        if program.hasPrefix("/") { return program }
        guard let path = searchPath.map({ "\($0)/\(program)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CommandError(arguments: full, status: 127, stderr: "\(program) not found in \(searchPath.joined(separator: ":"))")
        }
        return path
    }

    public func run(_ arguments: [String], input: [UInt8]? = nil) throws(CommandError) -> [UInt8] {
        let full = prefix + arguments
        let path = try Self.resolve(full)
        // Output goes to unlinked temporary files and the child inherits nothing else (CSpawn closes every
        // descriptor above 2): a program that starts a daemon (dhcpd) would otherwise leave the daemon holding
        // our descriptors, and waiting for their end would wait for the daemon.
        guard let stdout = TemporaryOutput(), let stderr = TemporaryOutput() else {
            throw CommandError(arguments: full, status: -1, stderr: "cannot create a temporary file for the output")
        }
        var inputPipe: [Int32] = [-1, -1]
        let nullFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(nullFD) }
        if input != nil {
            guard pipe(&inputPipe) == 0 else {
                throw CommandError(arguments: full, status: -1, stderr: "cannot create a pipe: \(String(cString: strerror(errno)))")
            }
            for fd in inputPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }  // other threads' children must not inherit it
        }
        let environment = ["LC_ALL=C", "PATH=" + Self.searchPath.joined(separator: ":")]
        var pid: pid_t = 0
        let result = withCStrings([path] + Array(full.dropFirst())) { argv in
            withCStrings(environment) { envp in
                vnet_spawn(path, argv, envp, input == nil ? nullFD : inputPipe[0], stdout.handle.fileDescriptor, stderr.handle.fileDescriptor, &pid)
            }
        }
        if input != nil { close(inputPipe[0]) }
        guard result == 0 else {
            if input != nil { close(inputPipe[1]) }
            throw CommandError(arguments: full, status: -1, stderr: "cannot start: \(String(cString: strerror(result)))")
        }
        if let input {
            // A child that stops reading early must not kill this process with SIGPIPE: MSG_NOSIGNAL is for
            // sockets, so the write simply fails with EPIPE here (SIGPIPE is ignored process-wide below).
            Self.ignoreSIGPIPE
            input.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(inputPipe[1], buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 { if errno == EINTR { continue }; break }
                    offset += written
                }
            }
            close(inputPipe[1])
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitStatus == 0 else {
            throw CommandError(arguments: full, status: exitStatus, stderr: String(decoding: stderr.contents(), as: UTF8.self),
                               stdout: String(decoding: stdout.contents(), as: UTF8.self))
        }
        return stdout.contents()
    }

    /// Starts a program without waiting for it (standard input on /dev/null; output and errors to `output`,
    /// created or truncated, else /dev/null); the caller reaps it. For many programs run at once.
    public func start(_ arguments: [String], output: String? = nil) throws(CommandError) -> pid_t {
        let full = prefix + arguments
        let path = try Self.resolve(full)
        let nullFD = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(nullFD) }
        let outputFD = output.map { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) } ?? nullFD
        defer { if outputFD != nullFD, outputFD >= 0 { close(outputFD) } }
        guard outputFD >= 0 else { throw CommandError(arguments: full, status: -1, stderr: "cannot create \(output ?? ""): \(String(cString: strerror(errno)))") }
        var pid: pid_t = 0
        let environment = ["LC_ALL=C", "PATH=" + Self.searchPath.joined(separator: ":")]
        let result = withCStrings([path] + Array(full.dropFirst())) { argv in
            withCStrings(environment) { envp in vnet_spawn(path, argv, envp, nullFD, outputFD, outputFD, &pid) }
        }
        guard result == 0 else { throw CommandError(arguments: full, status: -1, stderr: "cannot start: \(String(cString: strerror(result)))") }
        return pid
    }

    static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN); return () }()
}

/// Calls `body` with a NULL-terminated array of C strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// A temporary file, unlinked at once, that a child writes its output to.
final class TemporaryOutput {
    let handle: FileHandle

    init?() {
        var template = Array("/tmp/vnet-output-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    func contents() -> [UInt8] {
        try? handle.seek(toOffset: 0)
        return [UInt8]((try? handle.readToEnd()) ?? Data())
    }
}

