import VNetCore

/// Turns link and address operations into the lines of one `ip -batch -` run: one process per reconcile,
/// not one per object. Every token is a name or number that `NameRules` already checked where it entered; the
/// renderer checks again that no token holds white space, since `ip -batch` splits lines on it.
public enum IPBatch {
    public struct Unsafe: Error, CustomStringConvertible {
        public var token: String
        public var description: String { "refusing to pass '\(token)' to ip -batch" }
    }

    /// The batch lines for `operations`; operations that are not ip's (dhcpd, iptables, checks) are skipped.
    public static func lines(for operations: [KernelOperation]) throws(Unsafe) -> [String] {
        try numberedLines(for: operations).map(\.line)
    }

    /// The batch lines, each with the index of the operation it belongs to (a tap is two lines), so that a
    /// line `ip -force -batch` reports as failed is traced back to its operation.
    public static func numberedLines(for operations: [KernelOperation]) throws(Unsafe) -> [(operation: Int, line: String)] {
        var lines: [(operation: Int, line: String)] = []
        for (index, operation) in operations.enumerated() {
            let words: [String]
            switch operation {
            case .createVLAN(let name, let parent, let vlan): words = ["link", "add", "link", parent, "name", name, "type", "vlan", "id", String(vlan)]
            case .createBridge(let name): words = ["link", "add", "name", name, "type", "bridge"]
            case .createTap(let name, let mac):
                lines.append((index, try line(["tuntap", "add", "dev", name, "mode", "tap"])))
                words = ["link", "set", "dev", name, "address", mac.tapHostSide.description]
            case .setUp(let name): words = ["link", "set", "dev", name, "up"]
            case .attach(let port, let bridge): words = ["link", "set", "dev", port, "master", bridge]
            case .detach(let port): words = ["link", "set", "dev", port, "nomaster"]
            case .deleteLink(let name): words = ["link", "del", "dev", name]
            case .addAddress(let address):
                words = ["address", "add", address.cidr] + (address.broadcast.map { ["broadcast", $0.description] } ?? []) + ["dev", address.device]
            case .removeAddress(let address): words = ["address", "del", address.cidr, "dev", address.device]
            case .requireLink, .configureDHCPD, .stopDHCPD, .restoreIPTables, .clearIPTables:
                continue
            }
            lines.append((index, try line(words)))
        }
        return lines
    }

    /// The lines `ip -force -batch -` reported as failed, by number (from 1), each with what ip said before
    /// naming it: ip prints its error, then "Command failed -:N".
    public static func failedLines(_ stderr: String) -> [Int: String] {
        var failed: [Int: String] = [:]
        var said: [String] = []
        for line in stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) {
            if line.hasPrefix("Command failed "), let colon = line.lastIndex(of: ":"), let number = Int(line[line.index(after: colon)...]) {
                failed[number] = said.isEmpty ? "failed" : said.joined(separator: "; ")
                said = []
            } else {
                said.append(line.trimmingCharacters(in: .whitespaces))
            }
        }
        return failed
    }

    static func line(_ words: [String]) throws(Unsafe) -> String {
        for word in words where word.isEmpty || word.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0 == "\"" || $0 == "\\" || $0 == "#" }) {
            throw Unsafe(token: word)
        }
        return words.joined(separator: " ")
    }
}
