import Foundation

/// Writes a file so that readers (and a restarted daemon) see the old content or the new, never half of one:
/// the data goes to `PATH.tmp`, then rename(2) puts it in place. Returns false when either step failed (the
/// old file is then untouched).
@discardableResult
public func writeAtomically(_ data: Data, to path: String) -> Bool {
    let temporary = path + ".tmp"
    guard FileManager.default.createFile(atPath: temporary, contents: data) else { return false }
    return rename(temporary, path) == 0
}
