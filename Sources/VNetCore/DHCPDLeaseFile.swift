/// dhcpd's lease file as far as the agent touches it: before dhcpd is started, the host declarations it wrote
/// there for OMAPI changes are taken out, and everything else (leases, dhcpd's own bookkeeping) stays.
///
/// Why: dhcpd records every host made or deleted over OMAPI in its lease file (`host NAME { dynamic; ... }`,
/// `host NAME { dynamic; deleted; }`) and replays them on start, after the config. vnet writes the same
/// hosts into dhcpd.conf, so replaying them would at best repeat the config and at worst undo it: a deletion
/// recorded for an address later given to a new instance would delete the config's host of that name. With
/// the OMAPI records gone, a started dhcpd serves exactly its config.
public enum DHCPDLeaseFile {
    /// `text` without its top-level `host` statements. Quoted strings (with backslash escapes) and `#`
    /// comments are read as dhcpd reads them, so a brace inside either does not end a block. An unfinished
    /// statement at the end is kept as it was.
    public static func removingHostDeclarations(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var depth = 0, index = 0, statementStart: Int? = nil, kept = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "#"):
                while index < bytes.count, bytes[index] != UInt8(ascii: "\n") { index += 1 }
                continue
            case UInt8(ascii: "\""):
                if statementStart == nil { statementStart = index }
                index += 1
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                break
            default:
                if statementStart == nil { statementStart = index }
                if byte == UInt8(ascii: "{") { depth += 1 }
                let ends = (byte == UInt8(ascii: "}") && depth == 1) || (byte == UInt8(ascii: ";") && depth == 0)
                if byte == UInt8(ascii: "}") { depth = max(0, depth - 1) }
                if ends, let start = statementStart {
                    var end = index + 1
                    if end < bytes.count, bytes[end] == UInt8(ascii: "\n") { end += 1 }
                    if isHost(bytes, at: start) {
                        out += bytes[kept..<start]
                        kept = end
                    }
                    statementStart = nil
                    index = end
                    continue
                }
            }
            index += 1
        }
        out += bytes[kept...]
        return String(decoding: out, as: UTF8.self)
    }

    private static func isHost(_ bytes: [UInt8], at start: Int) -> Bool {
        let word = Array("host".utf8)
        guard bytes.count > start + word.count, Array(bytes[start..<(start + word.count)]) == word else { return false }
        let next = bytes[start + word.count]
        return next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") || next == UInt8(ascii: "\n")
    }
}
