/// The assignments of a shell-variable file such as eucalyptus.conf, with the line each starts on.
///
/// This is only the lexical layer: it knows shell quoting, not what VNET_* keys mean (that is
/// `ConfigValidator`). Every key is kept, known or not, because the real file holds many that are not ours.
public struct ConfFile: Sendable, Equatable {
    public struct Assignment: Sendable, Equatable {
        public var key: String
        public var value: String
        public var line: Int
        /// True when the value used `$` or a backquote outside single quotes. The shell would expand it;
        /// this parser does not, so a VNET_* key using it is refused rather than silently misread.
        public var usesExpansion: Bool
    }

    public var assignments: [Assignment]
    /// Lines that are not assignments, unterminated quotes and the like.
    public var syntaxErrors: [Diagnostic]

    /// The assignment the shell would end up with: the last one for `key`.
    public func last(_ key: String) -> Assignment? { assignments.last { $0.key == key } }

    public static func parse(_ text: String) -> ConfFile {
        var parser = ConfFileParser(Array(text.unicodeScalars))
        parser.run()
        return ConfFile(assignments: parser.assignments, syntaxErrors: parser.errors)
    }
}

/// A small state machine over the file's scalars. Supported: `KEY=value`, `KEY="value"`, `KEY='value'`,
/// concatenations of those (`KEY="a"'b'c`), backslash escapes as the shell has them, values spanning lines
/// inside quotes, an optional leading `export`, comments after white space, blank lines and CRLF endings.
private struct ConfFileParser {
    let scalars: [Unicode.Scalar]
    var index = 0
    var line = 1
    var assignments: [ConfFile.Assignment] = []
    var errors: [Diagnostic] = []

    init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

    var atEnd: Bool { index >= scalars.count }
    var current: Unicode.Scalar { scalars[index] }

    mutating func advance() {
        if current == "\n" { line += 1 }
        index += 1
    }

    mutating func skipBlanks() {
        while !atEnd, current == " " || current == "\t" || current == "\r" { advance() }
    }

    mutating func skipRestOfLine() {
        while !atEnd, current != "\n" { advance() }
        if !atEnd { advance() }
    }

    mutating func run() {
        while !atEnd {
            skipBlanks()
            if atEnd { break }
            if current == "\n" { advance(); continue }
            if current == "#" { skipRestOfLine(); continue }
            parseStatement()
        }
    }

    mutating func readWord() -> String {
        var word = ""
        while !atEnd, isNameScalar(current) {
            word.unicodeScalars.append(current)
            advance()
        }
        return word
    }

    mutating func parseStatement() {
        let startLine = line
        var key = readWord()
        if key == "export", !atEnd, current == " " || current == "\t" {
            skipBlanks()
            key = readWord()
        }
        guard !key.isEmpty, !atEnd, current == "=" else {
            fail(startLine, key: key, spaceBeforeEquals(key: key)
                ? "no spaces are allowed around '=' (shell syntax: KEY=value)"
                : "not a KEY=value assignment")
            return
        }
        guard let first = key.unicodeScalars.first, !("0"..."9").contains(first) else {
            fail(startLine, key: key, "a key cannot start with a digit")
            return
        }
        advance()  // '='
        guard let (value, expansion) = parseValue(startLine: startLine, key: key) else { return }
        // After the value: white space, then only a comment or the end of the line.
        skipBlanks()
        if !atEnd, current != "\n", current != "#" {
            fail(startLine, key: key, "unexpected text after the value; quote a value that contains spaces")
            return
        }
        if !atEnd, current == "#" { skipRestOfLine() }
        assignments.append(.init(key: key, value: value, line: startLine, usesExpansion: expansion))
    }

    /// Reads one shell word; nil (with an error recorded) on an unterminated quote.
    mutating func parseValue(startLine: Int, key: String) -> (String, Bool)? {
        var value = ""
        var expansion = false
        while !atEnd {
            let scalar = current
            switch scalar {
            case " ", "\t", "\r", "\n", ";":
                if scalar == ";" {
                    fail(startLine, key: key, "';' ends a shell command here; quote the value if it contains ';'")
                    return nil
                }
                return (value, expansion)
            case "'":
                advance()
                while !atEnd, current != "'" { value.unicodeScalars.append(current); advance() }
                if atEnd { fail(startLine, key: key, "single quote opened on line \(startLine) is never closed"); return nil }
                advance()
            case "\"":
                advance()
                while !atEnd, current != "\"" {
                    if current == "\\", index + 1 < scalars.count {
                        let next = scalars[index + 1]
                        if next == "\n" { advance(); advance(); continue }  // line continuation
                        if ["$", "`", "\"", "\\"].contains(next) {
                            advance()
                            value.unicodeScalars.append(current)
                            advance()
                            continue
                        }
                    }
                    if current == "$" || current == "`" { expansion = true }
                    value.unicodeScalars.append(current)
                    advance()
                }
                if atEnd { fail(startLine, key: key, "double quote opened on line \(startLine) is never closed"); return nil }
                advance()
            case "\\":
                advance()
                if atEnd { return (value, expansion) }
                if current == "\n" { advance(); continue }
                value.unicodeScalars.append(current)
                advance()
            default:
                if scalar == "$" || scalar == "`" { expansion = true }
                if ["|", "&", "<", ">", "(", ")"].contains(scalar) {
                    fail(startLine, key: key, "'\(scalar)' is a shell operator here; quote the value if it is meant literally")
                    return nil
                }
                value.unicodeScalars.append(scalar)
                advance()
            }
        }
        return (value, expansion)
    }

    /// `KEY = value`: a name, blanks, then '='. Looked at without consuming, for a precise message.
    func spaceBeforeEquals(key: String) -> Bool {
        guard !key.isEmpty else { return false }
        var probe = index
        while probe < scalars.count, scalars[probe] == " " || scalars[probe] == "\t" { probe += 1 }
        return probe > index && probe < scalars.count && scalars[probe] == "="
    }

    mutating func fail(_ errorLine: Int, key: String, _ message: String) {
        errors.append(.error(line: errorLine, key: key, message))
        skipRestOfLine()
    }
}

private func isNameScalar(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar {
    case "a"..."z", "A"..."Z", "0"..."9", "_": return true
    default: return false
    }
}
