import Foundation

/// Why a commit may have failed, in an operator's words: SQLite says "disk I/O error" whether the file
/// system went read-only (the kernel does that after an error) or filled up. Asked after a failed commit.
public enum StorageCondition {
    /// nil when the file system holding `directory` has room and takes a small write.
    public static func problem(at directory: String) -> String? {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return "\(directory) cannot be examined: \(String(cString: strerror(errno)))" }
        if info.f_flag & UInt(ST_RDONLY) != 0 { return "the file system holding \(directory) is read-only" }
        let free = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        if free < 64 << 10 { return "the file system holding \(directory) is full (\(free / 1024) KiB free)" }
        // ext4 turned read-only after an error ("emergency_ro") still says read-write to statvfs: try a write.
        let probe = "\(directory)/.vnet-write-probe"
        let descriptor = open(probe, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return "cannot write in \(directory): \(String(cString: strerror(errno)))" }
        defer { close(descriptor); unlink(probe) }
        let block = [UInt8](repeating: 0, count: 4096)
        if write(descriptor, block, block.count) != block.count || fsync(descriptor) != 0 {
            return "cannot write in \(directory): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
