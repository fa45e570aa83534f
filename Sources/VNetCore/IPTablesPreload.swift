/// Eucalyptus' `iptables-preload`: the operator's own rules, saved with `iptables-save`, that the front end
/// loads before its own. Eucalyptus flushed filter and nat, restored this file and added its rules after.
///
/// vnet keeps that meaning, and makes it atomic: each table the file names is replaced by the file's content
/// *and* vnet's chains in one iptables-restore transaction, so there is no moment without vnet's rules (nor
/// one with only them). Tables the file does not name are left to the usual `--noflush` path. An
/// `iptables-save` of a running front end includes vnet's own chains and jumps; those lines are ignored here
/// (vnet writes its current ones), and counted so the operator can be told.
public struct IPTablesPreload: Sendable, Equatable {
    public struct Line: Sendable, Equatable {
        public var number: Int
        public var text: String
    }

    public struct Section: Sendable, Equatable {
        public var table: String
        /// `:CHAIN POLICY [p:b]` lines, in file order.
        public var chains: [Line]
        /// Rules and other commands (`-A`, `-I`, `-N`, `-P`, ...), in file order.
        public var rules: [Line]
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var line: Int
        public var message: String
        public var description: String { "\(path):\(line): \(message)" }
    }

    public static let tables: Set<String> = ["filter", "nat", "mangle", "raw", "security"]

    public let path: String
    public let sections: [Section]
    /// Lines about vnet's own chains (VNET-*, vn-*) or jumping to them, skipped.
    public let ignoredVNetLines: Int

    public static func parse(_ text: String, path: String) throws(ParseError) -> IPTablesPreload {
        var sections: [Section] = []
        var current: (section: Section, line: Int)?
        var ignored = 0
        var seen: Set<String> = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = String(raw).trimmingWhitespace
            if line.isEmpty || line.hasPrefix("#") { continue }
            func fail(_ message: String) -> ParseError { ParseError(path: path, line: number, message: message) }
            if line.hasPrefix("*") {
                let table = String(line.dropFirst())
                if let open = current { throw fail("*\(table) starts before *\(open.section.table) (line \(open.line)) has its COMMIT") }
                guard tables.contains(table) else { throw fail("unknown table '\(table)' (known: \(tables.sorted().joined(separator: ", ")))") }
                guard seen.insert(table).inserted else { throw fail("table \(table) appears twice") }
                current = (Section(table: table, chains: [], rules: []), number)
                continue
            }
            guard var open = current else { throw fail("'\(line.prefix(40))' is outside a table: an iptables-save file has *TABLE ... COMMIT sections") }
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if line == "COMMIT" {
                sections.append(open.section)
                current = nil
                continue
            }
            if line.hasPrefix(":") {
                let chain = String(tokens[0].dropFirst())
                guard tokens.count >= 2, !chain.isEmpty else { throw fail("a chain line is ':CHAIN POLICY [packets:bytes]'") }
                if ChainName.isOurs(chain) { ignored += 1 } else { open.section.chains.append(Line(number: number, text: line)) }
            } else if line.hasPrefix("-") {
                guard tokens.count >= 2 else { throw fail("'\(line)' names no chain") }
                if ChainName.isOurs(tokens[1]) || ChainName.jumpsToOurs(tokens) { ignored += 1 } else { open.section.rules.append(Line(number: number, text: line)) }
            } else {
                throw fail("'\(line.prefix(40))' is not an iptables-save line (*TABLE, :CHAIN, a rule, or COMMIT)")
            }
            current = open
        }
        if let open = current {
            throw ParseError(path: path, line: open.line, message: "*\(open.section.table) has no COMMIT")
        }
        return IPTablesPreload(path: path, sections: sections, ignoredVNetLines: ignored)
    }

    /// The iptables-restore document (for a plain restore, without --noflush) that replaces every table of the
    /// preload, with vnet's chains added to filter and nat. `origins[i]` is the preload line that document line
    /// `i + 1` came from (nil: vnet's), so a line iptables-restore rejects can be named in the operator's file.
    public func document(with firewall: FirewallConfig) -> (text: String, origins: [Int?]) {
        var lines: [(String, Int?)] = []
        for section in sections {
            let ours: [String]
            switch section.table {
            case "filter": ours = Self.body(IPTablesRenderer.filter(firewall))
            case "nat": ours = Self.body(IPTablesRenderer.nat(firewall))
            default: ours = []
            }
            let jumps = IPTablesRenderer.jumps.filter { $0.table == section.table }
                .map { (["-I", $0.builtin, "1"] + $0.arguments).joined(separator: " ") }
            lines.append(("*" + section.table, nil))
            // Declarations first (vnet's last, so FORWARD's policy is vnet's DROP, as Eucalyptus set it after
            // the preload), then the operator's rules, then vnet's, then the jumps at the top of the built-ins.
            lines += section.chains.map { ($0.text, $0.number) }
            lines += ours.filter { $0.hasPrefix(":") }.map { ($0, nil) }
            lines += section.rules.map { ($0.text, $0.number) }
            lines += ours.filter { !$0.hasPrefix(":") }.map { ($0, nil) }
            lines += jumps.map { ($0, nil) }
            lines.append(("COMMIT", nil))
        }
        return (lines.map(\.0).joined(separator: "\n") + "\n", lines.map(\.1))
    }

    /// The lines between `*table` and `COMMIT` of a rendered document, without comments.
    static func body(_ document: String) -> [String] {
        document.split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("#") && !$0.hasPrefix("*") && $0 != "COMMIT" }
    }
}
