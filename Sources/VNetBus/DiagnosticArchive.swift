import Foundation
import VNetCore
import VNetSystem

/// Writing a diagnostic bundle: a tar archive that never replaces an existing file and is never left half
/// written (it is written beside and renamed).
public enum DiagnosticArchive {
    /// The bundle's default name part, UTC: 20261125T125024Z.
    public static func stamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec)
    }

    /// Writes `entries` to `path`; returns the archive's size.
    public static func write(_ entries: [TarArchive.Entry], to path: String) throws -> Int {
        if FileManager.default.fileExists(atPath: path) { throw BusError("\(path) exists; give a new name") }
        let bytes: [UInt8]
        do { bytes = try TarArchive.archive(entries, modified: Int(Date().timeIntervalSince1970)) } catch {
            throw BusError("cannot build the archive: \(error)")
        }
        guard writeAtomically(Data(bytes), to: path) else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: path + ".tmp")
            throw BusError("cannot write \(path): \(reason)")
        }
        return bytes.count
    }
}
