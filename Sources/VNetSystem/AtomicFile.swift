import Foundation

/// Writes a file so that readers (and a restarted daemon) see the old content or the new, never half of one:
/// the data goes to `PATH.tmp`, then rename(2) puts it in place. Returns false when either step failed (the
/// old file is then untouched). With `permissions` the file is created with that mode (umask aside), so a
/// secret is never readable by others, not even for a moment.
@discardableResult
public func writeAtomically(_ data: Data, to path: String, permissions: mode_t? = nil) -> Bool {
    let temporary = path + ".tmp"
    unlink(temporary)
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, permissions ?? 0o644)
    guard descriptor >= 0 else { return false }
    let written = data.withUnsafeBytes { buffer -> Bool in
        var offset = 0
        while offset < buffer.count {
            let count = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return false }
            offset += count
        }
        return true
    }
    guard close(descriptor) == 0, written else { unlink(temporary); return false }
    return rename(temporary, path) == 0
}
