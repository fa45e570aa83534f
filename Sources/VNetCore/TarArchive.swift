/// A POSIX ustar archive built in memory: what `vnetctl diagnose` writes, readable with plain `tar xf` on any
/// machine an operator would send the bundle to. Regular files only; directories are implied by the paths.
public enum TarArchive {
    public struct Entry: Sendable, Equatable {
        public var path: String
        public var content: [UInt8]
        public init(path: String, content: [UInt8]) { self.path = path; self.content = content }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case pathTooLong(String)
        public var description: String {
            switch self { case .pathTooLong(let path): "tar: '\(path)' is longer than ustar allows (100 bytes of name, 155 of prefix)" }
        }
    }

    /// The archive's bytes; `modified` is the files' time (seconds since 1970).
    public static func archive(_ entries: [Entry], modified: Int) throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        for entry in entries {
            out += try header(for: entry, modified: modified)
            out += entry.content
            out += [UInt8](repeating: 0, count: (512 - entry.content.count % 512) % 512)
        }
        out += [UInt8](repeating: 0, count: 1024)  // two empty blocks end the archive
        return out
    }

    static func header(for entry: Entry, modified: Int) throws(Failure) -> [UInt8] {
        let path = Array(entry.path.utf8)
        var name = path, prefix: [UInt8] = []
        if path.count > 100 {
            // Split at a slash so that the prefix fits in 155 bytes and the rest in 100.
            guard let cut = path.indices.last(where: { path[$0] == UInt8(ascii: "/") && $0 <= 155 && path.count - $0 - 1 <= 100 }) else {
                throw .pathTooLong(entry.path)
            }
            prefix = Array(path[..<cut]); name = Array(path[(cut + 1)...])
        }
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], at offset: Int) { for (index, byte) in bytes.enumerated() { block[offset + index] = byte } }
        func octal(_ value: Int, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(name, at: 0)
        put(octal(0o644, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)             // uid
        put(octal(0, width: 8), at: 116)             // gid
        put(octal(entry.content.count, width: 12), at: 124)
        put(octal(modified, width: 12), at: 136)
        put(Array("        ".utf8), at: 148)         // checksum: spaces while it is computed
        block[156] = UInt8(ascii: "0")               // a regular file
        put(Array("ustar".utf8) + [0], at: 257)
        put(Array("00".utf8), at: 263)
        put(prefix, at: 345)
        let sum = block.reduce(0) { $0 + Int($1) }
        put(octal(sum, width: 7) + [UInt8(ascii: " ")], at: 148)
        return block
    }
}
