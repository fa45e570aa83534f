import Foundation

/// One line per event on stderr: time, component, message. Lines about a change carry node and revision.
public enum Log {
    public static func line(_ component: String, _ message: String) {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        FileHandle.standardError.write(Data("\(stamp) \(component): \(message)\n".utf8))
    }
}
