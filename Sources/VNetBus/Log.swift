import Foundation
import Logging

/// The daemons' logging: swift-log `Logger`s whose handler writes one line per event to stderr, as text or
/// as JSON, and keeps the last lines in memory for `vnetctl diagnose`.
///
/// Lines about a change carry the node and the revision as metadata (`node=n1 revision=12`), so an
/// operator can follow one revision across the front end and every node with grep or jq.
public enum Log {
    public enum Format: String, CaseIterable, Sendable { case text, json }

    /// Shared by every logger of the process: the output format and the tail kept for diagnostics.
    public static let sink = LogSink()

    /// A logger for `component` ("coordinator", "agent"), with `metadata` on every line.
    public static func logger(_ component: String, metadata: Logger.Metadata = [:]) -> Logger {
        var logger = Logger(label: component) { label in LineLogHandler(label: label, sink: sink) }
        for (key, value) in metadata { logger[metadataKey: key] = value }
        return logger
    }
}

/// Where log lines go: stderr, and a ring of the most recent ones. Locked: the probe thread and the metrics
/// server log too.
public final class LogSink: @unchecked Sendable {
    let lock = NSLock()
    var formatValue = Log.Format.text
    var recent: [String] = []
    var next = 0
    public let keep = 400

    public var format: Log.Format {
        get { lock.withLock { formatValue } }
        set { lock.withLock { formatValue = newValue } }
    }

    /// The last lines written, oldest first.
    public var tail: [String] {
        lock.withLock { recent.count < keep ? recent : Array(recent[next...] + recent[..<next]) }
    }

    func write(_ line: String) {
        record(line)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Keeps `line` in the ring only.
    func record(_ line: String) {
        lock.withLock {
            if recent.count < keep { recent.append(line) } else { recent[next] = line; next = (next + 1) % keep }
        }
    }
}

/// Formats events: `TIME LEVEL component: message key=value ...` or one JSON object per line with the same
/// fields (`ts`, `level`, `component`, `msg`, then the metadata keys).
struct LineLogHandler: LogHandler {
    let label: String
    let sink: LogSink
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { for (key, value) in extra { fields[key] = value } }
        sink.write(LineLogHandler.format(time: LogTime.now(), level: event.level, component: label, message: "\(event.message)",
                                         metadata: fields, as: sink.format))
    }

    /// node and revision first (they are what a reader looks for), then any other keys by name.
    static func format(time: String, level: Logger.Level, component: String, message: String, metadata: Logger.Metadata, as format: Log.Format) -> String {
        var pairs: [(String, String)] = []
        for key in ["node", "revision"] { if let value = metadata[key] { pairs.append((key, "\(value)")) } }
        if metadata.count > pairs.count {
            for key in metadata.keys.sorted() where key != "node" && key != "revision" { pairs.append((key, "\(metadata[key]!)")) }
        }
        switch format {
        case .text:
            var line = "\(time) \(level) \(component): \(message)"
            for (key, value) in pairs {
                let plain = !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
                line += " \(key)=\(plain ? value : jsonString(value))"
            }
            return line
        case .json:
            var line = "{\"ts\":\(jsonString(time)),\"level\":\(jsonString("\(level)")),\"component\":\(jsonString(component)),\"msg\":\(jsonString(message))"
            for (key, value) in pairs { line += ",\(jsonString(key)):\(jsonString(value))" }
            return line + "}"
        }
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// UTC timestamps with milliseconds, made with gmtime_r rather than ISO8601DateFormatter, which pulls ICU's
/// tables into memory: about 6 MiB of an agent's resident size for a timestamp.
enum LogTime {
    static func now() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}
