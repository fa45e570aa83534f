import VNetCore

/// The gateway's access keys: each maps an access key id and its secret to a vnet user (the `user` of
/// groups and addresses), and marks the operator's keys as admin (they see every user's groups and
/// addresses, as `euca-describe-groups verbose` did).
///
/// The file, one key per line, `#` comments:
///
///     # access-key-id          secret-access-key                          user   [admin]
///     AKIAVNETALICE0000001     kq8Yt0...40 characters...                   alice
///     AKIAVNETOPERATOR0001     Zp3m...                                    admin  admin
public struct AccessKeys: Sendable {
    public struct Key: Sendable, Equatable {
        public var id: String
        public var secret: String
        public var user: String
        public var admin: Bool
        public init(id: String, secret: String, user: String, admin: Bool) {
            self.id = id; self.secret = secret; self.user = user; self.admin = admin
        }
    }

    public let keys: [String: Key]

    public init(_ keys: [Key]) {
        keys.forEach { precondition(Self.problem($0) == nil, "\(Self.problem($0)!)") }
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public func key(_ id: String) -> Key? { keys[id] }

    /// Reads the file's text; an error names the file and line (`path:3: ...`) and no key of it is used.
    public static func parse(_ text: String, path: String) throws(EC2KeyFileError) -> AccessKeys {
        var keys: [Key] = []
        var seen: Set<String> = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if words.isEmpty { continue }
            let at = "\(path):\(index + 1)"
            guard words.count == 3 || (words.count == 4 && words[3] == "admin") else {
                throw EC2KeyFileError("\(at): expected 'ACCESS-KEY-ID SECRET USER [admin]', found \(words.count) words")
            }
            let key = Key(id: words[0], secret: words[1], user: words[2], admin: words.count == 4)
            if let problem = problem(key) { throw EC2KeyFileError("\(at): \(problem)") }
            guard seen.insert(key.id).inserted else { throw EC2KeyFileError("\(at): access key \(key.id) is listed twice") }
            keys.append(key)
        }
        guard !keys.isEmpty else { throw EC2KeyFileError("\(path): no access keys (lines 'ACCESS-KEY-ID SECRET USER [admin]')") }
        return AccessKeys(keys)
    }

    /// AWS's key ids are 16-128 upper-case letters and digits; secrets here are at least 16 printable
    /// characters (AWS's are 40), so that a truncated line is not taken for a weak key.
    static func problem(_ key: Key) -> String? {
        guard (16...128).contains(key.id.utf8.count), key.id.utf8.allSatisfy({ (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return "access key id '\(key.id.prefix(40))' is not 16-128 upper-case letters and digits"
        }
        guard (16...128).contains(key.secret.utf8.count), key.secret.utf8.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            return "the secret of \(key.id) is not 16-128 printable characters"
        }
        if let problem = NameRules.userNameProblem(key.user) { return "user of \(key.id): \(problem)" }
        return nil
    }
}

public struct EC2KeyFileError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
