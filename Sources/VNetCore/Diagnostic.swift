/// One finding about an input file: where (line, key), how bad, and what is wrong in words an operator can
/// act on. Line 0 means "the file as a whole", for example a required key that is missing.
public struct Diagnostic: Hashable, Sendable, Codable {
    public enum Severity: String, Sendable, Codable { case error, warning }

    public var severity: Severity
    public var line: Int
    public var key: String
    public var message: String

    public init(_ severity: Severity, line: Int, key: String, _ message: String) {
        self.severity = severity
        self.line = line
        self.key = key
        self.message = message
    }

    public static func error(line: Int, key: String, _ message: String) -> Diagnostic {
        Diagnostic(.error, line: line, key: key, message)
    }

    public static func warning(line: Int, key: String, _ message: String) -> Diagnostic {
        Diagnostic(.warning, line: line, key: key, message)
    }

    /// `FILE:LINE: KEY: message`, the shape compilers use, so editors can jump to it.
    public func formatted(file: String) -> String {
        let place = line > 0 ? "\(file):\(line):" : "\(file):"
        let label = severity == .warning ? "warning: " : ""
        return key.isEmpty ? "\(place) \(label)\(message)" : "\(place) \(key): \(label)\(message)"
    }
}

extension Array where Element == Diagnostic {
    public var errors: [Diagnostic] { filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { filter { $0.severity == .warning } }
    public var hasErrors: Bool { contains { $0.severity == .error } }
}
