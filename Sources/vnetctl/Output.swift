import ArgumentParser
import Foundation
import VNetCore

/// An error that has already been explained: its message goes to stderr and `code` is the exit status.
struct CommandFailure: Error {
    var code: Int32
    var message: String

    static func usage(_ message: String) -> CommandFailure { CommandFailure(code: 2, message: message) }
    static func invalidInput(_ message: String = "") -> CommandFailure { CommandFailure(code: 1, message: message) }
}

/// Data to stdout, diagnostics to stderr, JSON in one stable shape.
enum Output {
    static func error(_ message: String) {
        let text = message.hasSuffix("\n") ? message : message + "\n"
        FileHandle.standardError.write(Data(("vnetctl: " + text).utf8))
    }

    static func text(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        FileHandle.standardOutput.write(data)
    }

    /// Reads a whole file, or fails with exit code 2 naming the file and the reason.
    static func read(_ path: String) throws(CommandFailure) -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .usage("cannot read \(path): no such file")
        }
        if isDirectory.boolValue { throw .usage("cannot read \(path): it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .usage("cannot read \(path): permission denied or unreadable")
        }
        return [UInt8](data)
    }

    static func readText(_ path: String) throws(CommandFailure) -> String {
        let bytes = try read(path)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .usage("cannot read \(path): it is not UTF-8 text")
        }
        return text
    }
}

extension HostRole: ExpressibleByArgument {}
