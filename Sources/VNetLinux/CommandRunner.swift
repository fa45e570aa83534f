import Foundation

/// Runs one program with an argument list: never a shell, never a command line built from strings.
/// Everything the Linux backend does to the host goes through one of these, so tests can put a fake in its
/// place and a namespace lane can prefix `ip netns exec NS`.
public protocol CommandRunner: Sendable {
    func run(_ arguments: [String], input: [UInt8]?) throws(CommandError) -> [UInt8]
}

/// A command that could not run or exited non-zero: what was run, how it ended, what it said.
public struct CommandError: Error, Sendable, CustomStringConvertible {
    public var arguments: [String]
    public var status: Int32
    public var stderr: String
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

    static let searchPath = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    public func run(_ arguments: [String], input: [UInt8]? = nil) throws(CommandError) -> [UInt8] {
        let full = prefix + arguments
        guard let program = full.first else { throw CommandError(arguments: full, status: -1, stderr: "no program given") }
        let path = program.hasPrefix("/") ? program
            : Self.searchPath.map { "\($0)/\(program)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let path else { throw CommandError(arguments: full, status: 127, stderr: "\(program) not found in \(Self.searchPath.joined(separator: ":"))") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = Array(full.dropFirst())
        process.environment = ["LC_ALL": "C", "PATH": Self.searchPath.joined(separator: ":")]
        let stdout = Pipe(), stderr = Pipe(), stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = stdin
        do { try process.run() } catch {
            throw CommandError(arguments: full, status: -1, stderr: "cannot start: \(error)")
        }
        // Write input and read both outputs concurrently enough not to deadlock on full pipes.
        let errorData = LockedData()
        let reader = Thread { errorData.set(stderr.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        if let input { stdin.fileHandleForWriting.write(Data(input)) }
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { Thread.sleep(forTimeInterval: 0.001) }
        guard process.terminationStatus == 0 else {
            throw CommandError(arguments: full, status: process.terminationStatus, stderr: String(decoding: errorData.get(), as: UTF8.self))
        }
        return [UInt8](output)
    }
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}
