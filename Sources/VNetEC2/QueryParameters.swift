/// The parameters of one EC2 Query request: `Action=...&Version=...&IpPermissions.1.IpRanges.1.CidrIp=...`,
/// from the URL's query and the form-encoded body together. EC2's list encoding is name.N with N counted
/// from 1 (`GroupName.1`, `IpPermissions.2.Groups.1.GroupId`); `list` and `members` read it back.
public struct QueryParameters: Sendable, Equatable {
    public private(set) var values: [String: String]

    public init(_ values: [String: String] = [:]) { self.values = values }

    /// EC2 caps a request well below this; more is refused rather than parsed.
    public static let maxParameters = 1000
    public static let maxIndex = 1000

    /// Decodes `name=value&...` (percent-encoding, and '+' as a space in a form body). A name given twice,
    /// a malformed escape or too many parameters is an error naming it.
    public static func parse(_ text: String, plusIsSpace: Bool) throws(EC2Error) -> [(String, String)] {
        var pairs: [(String, String)] = []
        guard !text.isEmpty else { return pairs }
        for piece in text.split(separator: "&", omittingEmptySubsequences: true) {
            if pairs.count >= maxParameters { throw EC2Error.invalid("query", "more than \(maxParameters) parameters") }
            let name: Substring, value: Substring
            if let equals = piece.firstIndex(of: "=") {
                name = piece[..<equals]; value = piece[piece.index(after: equals)...]
            } else {
                name = piece; value = ""
            }
            guard let decodedName = percentDecode(name, plusIsSpace: plusIsSpace),
                  let decodedValue = percentDecode(value, plusIsSpace: plusIsSpace) else {
                throw EC2Error.invalid("query", "'\(String(piece.prefix(64)))' is not percent-encoded UTF-8")
            }
            pairs.append((decodedName, decodedValue))
        }
        return pairs
    }

    /// Adds pairs; a name already present is refused (EC2 does not merge repeated names).
    public mutating func add(_ pairs: [(String, String)]) throws(EC2Error) {
        for (name, value) in pairs {
            guard !name.isEmpty else { throw EC2Error.invalid("query", "a parameter has no name") }
            if values[name] != nil { throw EC2Error.invalid(name, "given more than once") }
            if values.count >= Self.maxParameters { throw EC2Error.invalid("query", "more than \(Self.maxParameters) parameters") }
            values[name] = value
        }
    }

    public subscript(_ name: String) -> String? { values[name] }

    /// A required parameter, not empty.
    public func required(_ name: String) throws(EC2Error) -> String {
        guard let value = values[name], !value.isEmpty else { throw EC2Error.missing(name) }
        return value
    }

    /// An optional integer parameter.
    public func integer(_ name: String) throws(EC2Error) -> Int? {
        guard let text = values[name] else { return nil }
        guard let value = Int(text), (-1_000_000...1_000_000).contains(value) else { throw EC2Error.invalid(name, "'\(text)' is not an integer") }
        return value
    }

    /// The values of `prefix.1`, `prefix.2`, ... in index order. Indices need not be contiguous (clients
    /// send what the user gave), but must be positive integers.
    public func list(_ prefix: String) throws(EC2Error) -> [String] {
        try indexed(prefix).compactMap { index, rest in rest.isEmpty ? values["\(prefix).\(index)"] : nil }
    }

    /// The members `prefix.N.*` as parameters of their own (their names without `prefix.N.`), in index order.
    public func members(_ prefix: String) throws(EC2Error) -> [QueryParameters] {
        var byIndex: [Int: [String: String]] = [:]
        for (index, rest) in try indexed(prefix) where !rest.isEmpty {
            byIndex[index, default: [:]][rest] = values["\(prefix).\(index).\(rest)"]
        }
        return byIndex.keys.sorted().map { QueryParameters(byIndex[$0]!) }
    }

    /// Every name under `prefix.`: (N, what follows `prefix.N.` or "" for `prefix.N` itself).
    func indexed(_ prefix: String) throws(EC2Error) -> [(Int, String)] {
        var found: [(Int, String)] = []
        let head = prefix + "."
        for name in values.keys where name.hasPrefix(head) {
            let tail = name.dropFirst(head.count)
            let digits = tail.prefix { $0.isASCII && $0.isNumber }
            guard let index = Int(digits), (1...Self.maxIndex).contains(index), digits.first != "0" else {
                throw EC2Error.invalid(name, "\(prefix) members are numbered from 1 to \(Self.maxIndex)")
            }
            let after = tail.dropFirst(digits.count)
            if after.isEmpty { found.append((index, "")) } else if after.first == "." && after.count > 1 {
                found.append((index, String(after.dropFirst())))
            } else {
                throw EC2Error.unknownParameter(name)
            }
        }
        return found.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    /// Names not among `known` (exact) or under one of `knownPrefixes`: refused, so that a misspelt
    /// parameter is never silently ignored.
    public func checkOnly(_ known: Set<String>, prefixes: [String] = []) throws(EC2Error) {
        for name in values.keys.sorted() where !known.contains(name) && !prefixes.contains(where: { name.hasPrefix($0 + ".") }) {
            throw EC2Error.unknownParameter(name)
        }
    }

    static func percentDecode(_ text: Substring, plusIsSpace: Bool) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "%"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
                bytes.append(high << 4 | low)
            case UInt8(ascii: "+") where plusIsSpace:
                bytes.append(UInt8(ascii: " "))
            default:
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, every other byte %XX (upper case).
    public static func uriEncode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(digits[Int(byte >> 4)])
                out.unicodeScalars.append(digits[Int(byte & 15)])
            }
        }
        return out
    }
}
