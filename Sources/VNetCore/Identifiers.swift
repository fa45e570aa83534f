/// An instance id in Eucalyptus' form, `i-` and eight hex digits. The digits are the instance's MAC suffix,
/// so they are kept as a number and always printed lower case.
public struct InstanceID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public let number: UInt32

    public init(number: UInt32) { self.number = number }

    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 10, utf8[0] == UInt8(ascii: "i"), utf8[1] == UInt8(ascii: "-") else { return nil }
        let digits = text.dropFirst(2)
        guard digits.allSatisfy(\.isHexDigit), let number = UInt32(digits, radix: 16) else { return nil }
        self.number = number
    }

    public static func < (lhs: InstanceID, rhs: InstanceID) -> Bool { lhs.number < rhs.number }

    public var description: String {
        let hex = String(number, radix: 16)
        return "i-" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// The 8 hex digits alone, used for the default vif name.
    public var hexDigits: String { String(description.dropFirst(2)) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = InstanceID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "'\(text)' is not an instance id (i- followed by 8 hex digits)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A security group is named within its owner's account, as in EC2: `user/name`.
public struct GroupID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let user: String
    public let name: String

    public init(user: String, name: String) {
        self.user = user
        self.name = name
    }

    /// Parses "user/name"; the name may itself contain '/', the user may not.
    public init?(_ text: some StringProtocol) {
        guard let slash = text.firstIndex(of: "/") else { return nil }
        self.init(user: String(text[..<slash]), name: String(text[text.index(after: slash)...]))
    }

    public static func < (lhs: GroupID, rhs: GroupID) -> Bool {
        (lhs.user, lhs.name) < (rhs.user, rhs.name)
    }

    public var description: String { "\(user)/\(name)" }
}

/// Rules for the names that reach the kernel, iptables or a file name. They are checked once, where they
/// enter (config, scenario, bus), so that nothing downstream has to wonder.
public enum NameRules {
    /// IFNAMSIZ is 16 including the terminating NUL.
    public static let maxInterfaceNameLength = 15
    /// iptables refuses chain names of 29 characters or more (XT_EXTENSION_MAXNAMELEN).
    public static let maxChainNameLength = 28

    /// Why `name` cannot be a Linux interface name, or nil when it can.
    ///
    /// The kernel refuses empty names, "." and "..", '/', ':' and white space. This project is stricter and
    /// allows letters, digits, '.', '_' and '-' (not first), so that a name can never be read as an option
    /// or carry a character a shell or a config file would interpret.
    public static func interfaceNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "interface name is empty" }
        if name.utf8.count > maxInterfaceNameLength {
            return "interface name '\(name)' is \(name.utf8.count) characters; the kernel allows at most \(maxInterfaceNameLength)"
        }
        if name == "." || name == ".." { return "'\(name)' cannot be an interface name" }
        if name.hasPrefix("-") { return "interface name '\(name)' starts with '-' and would read as an option" }
        if let bad = name.unicodeScalars.first(where: { !isSafeNameScalar($0) }) {
            return "interface name '\(name)' contains \(describe(bad)); allowed are letters, digits, '.', '_' and '-'"
        }
        return nil
    }

    /// Why `name` cannot be a node (host) name, or nil. Node names appear in logs, file names and keys.
    public static func hostNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "host name is empty" }
        if name.utf8.count > 63 { return "host name '\(name)' is longer than 63 characters" }
        if name.hasPrefix("-") || name.hasPrefix(".") { return "host name '\(name)' must start with a letter or digit" }
        if let bad = name.unicodeScalars.first(where: { !isSafeNameScalar($0) }) {
            return "host name '\(name)' contains \(describe(bad)); allowed are letters, digits, '.', '_' and '-'"
        }
        return nil
    }

    /// Why `user` cannot own groups, or nil. Users appear in chain names, so the set is small.
    public static func userNameProblem(_ user: String) -> String? {
        if user.isEmpty { return "user name is empty" }
        if user.utf8.count > 64 { return "user name '\(user)' is longer than 64 characters" }
        if let bad = user.unicodeScalars.first(where: { !(isSafeNameScalar($0) || $0 == "@") }) {
            return "user name '\(user)' contains \(describe(bad)); allowed are letters, digits, '.', '_', '-' and '@'"
        }
        return nil
    }

    /// Why `name` cannot be a group name, or nil. EC2 allows most printable characters in group names;
    /// they never reach a kernel or a shell unchanged (chain names are derived), so only control characters
    /// and absurd lengths are refused.
    public static func groupNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "group name is empty" }
        if name.utf8.count > 255 { return "group name is longer than 255 characters" }
        if let bad = name.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return "group name contains \(describe(bad))"
        }
        return nil
    }

    /// A group's description is free text (EC2 allows 255 characters) but never reaches the kernel; control
    /// characters are refused so that a listing or a log line cannot be forged with it.
    public static func descriptionProblem(_ text: String) -> String? {
        if text.utf8.count > 255 { return "description is longer than 255 characters" }
        if let bad = text.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return "description contains \(describe(bad))"
        }
        return nil
    }

    static func isSafeNameScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }

    static func describe(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case " ": return "a space"
        case "\t": return "a tab"
        default:
            return scalar.value < 0x20 || scalar.value == 0x7f
                ? "control character U+\(String(scalar.value, radix: 16, uppercase: true))"
                : "'\(Character(scalar))'"
        }
    }
}
