import Foundation
import VNetSystem

/// Where a coordinator listens: updates (PUB), node sync (ROUTER) and control (ROUTER for vnetctl).
///
/// Given a host and base port P they are P, P+1 and P+2. A coordinator bound to port 0 (tests) gets three free
/// ports and writes them to `endpoints.json` in its state directory, which agents and vnetctl can read.
public struct BusEndpoints: Codable, Sendable, Equatable {
    public var publish: String
    public var sync: String
    public var control: String

    public static let defaultPort = 7460
    public static let fileName = "endpoints.json"

    public init(publish: String, sync: String, control: String) {
        self.publish = publish
        self.sync = sync
        self.control = control
    }

    /// `HOST:PORT` or `HOST` (default port). Port 0 means "any free port" (binding only).
    public init(hostAndBasePort text: String) throws(BusError) {
        var host = text, port = Self.defaultPort
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            guard let parsed = Int(text[text.index(after: colon)...]), (0...65533).contains(parsed) else {
                throw BusError("'\(text)' is not HOST:PORT with a port in 0-65533")
            }
            port = parsed
        }
        guard !host.isEmpty, host.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || ".-*".unicodeScalars.contains($0) }) else {
            throw BusError("'\(text)' does not name a host (an address, a name or *)")
        }
        func endpoint(_ offset: Int) -> String { "tcp://\(host):\(port == 0 ? "*" : String(port + offset))" }
        self.init(publish: endpoint(0), sync: endpoint(1), control: endpoint(2))
    }

    /// A list of coordinators as written in a flag or VNET_BUS_COORDINATOR: comma- or space-separated, at most 16,
    /// none twice.
    public static func list(_ text: String) throws(BusError) -> [String] {
        let items = text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
        guard !items.isEmpty else { throw BusError("'\(text)' names no coordinator") }
        guard items.count <= 16 else { throw BusError("'\(text)': at most 16 coordinators") }
        guard Set(items).count == items.count else { throw BusError("'\(text)' names a coordinator twice") }
        return items
    }

    public static func load(from path: String) throws(BusError) -> BusEndpoints {
        guard let data = FileManager.default.contents(atPath: path) else { throw BusError("cannot read endpoints file \(path)") }
        do { return try JSONDecoder().decode(BusEndpoints.self, from: data) } catch {
            throw BusError("\(path) is not an endpoints file (publish, sync, control): \(error)")
        }
    }

    public func write(to path: String) throws(BusError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do { data = try encoder.encode(self) } catch { throw BusError("cannot write \(path): \(error)") }
        // Readers see the old file or the new one, never half of one.
        guard writeAtomically(data, to: path) else { throw BusError("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    /// `wanted` with the port of `previous` when `wanted` asks for any port (`tcp://HOST:*`) and `previous` is
    /// a TCP endpoint with a port: a coordinator started again on port 0 takes the ports it had, so agents and
    /// vnetctl holding its endpoints file reach it again. Otherwise `wanted` as it is.
    public static func reusing(_ wanted: String, previous: String?) -> String {
        guard wanted.hasSuffix(":*"), let previous, previous.hasPrefix("tcp://"), let colon = previous.lastIndex(of: ":"),
              let port = Int(previous[previous.index(after: colon)...]), (1...65535).contains(port) else { return wanted }
        return String(wanted.dropLast()) + String(port)
    }

    /// `endpoint` with its host replaced by `host` (its port kept): what a coordinator advertises.
    public static func advertised(_ endpoint: String, host: String) -> String {
        guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return endpoint }
        return "tcp://\(host)" + endpoint[colon...]
    }

    /// An endpoint bound to `*` as a peer can connect to it.
    public static func connectable(_ endpoint: String) -> String {
        endpoint.replacingOccurrences(of: "tcp://0.0.0.0:", with: "tcp://127.0.0.1:")
            .replacingOccurrences(of: "tcp://*:", with: "tcp://127.0.0.1:")
    }
}

/// A bus problem an operator can act on.
public struct BusError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
