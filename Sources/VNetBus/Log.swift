import Foundation

/// One line per event on stderr: UTC time, component, message. Lines about a change carry node and revision.
///
/// The timestamp is made with gmtime_r and snprintf rather than ISO8601DateFormatter, which pulls ICU's
/// tables into memory: about 6 MiB of an agent's resident size for a timestamp.
public enum Log {
    public static func line(_ component: String, _ message: String) {
        FileHandle.standardError.write(Data("\(timestamp()) \(component): \(message)\n".utf8))
    }

    static func timestamp() -> String {
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
