import ArgumentParser
import VNetBus
import ZMQ

/// `vnetctl keys generate --dir DIR (--coordinator | --node NAME | --admin NAME)`
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "CURVE keys.", subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate",
            abstract: "Write a key pair (Z85, mode 0600) into a key directory.",
            discussion: "DIR/coordinator.{key,pub}, DIR/nodes/NAME.{key,pub} or DIR/admins/NAME.{key,pub}; the .pub files in nodes/ and admins/ are the coordinator's allow-lists.")
        @Option var dir: String
        @Flag var coordinator = false
        @Option var node: String?
        @Option var admin: String?

        func validate() throws {
            let chosen = [coordinator, node != nil, admin != nil].filter { $0 }.count
            guard chosen == 1 else { throw ValidationError("give exactly one of --coordinator, --node NAME, --admin NAME") }
            for name in [node, admin].compactMap({ $0 }) {
                guard NameCheck.isPlain(name) else { throw ValidationError("'\(name)' must be letters, digits, '.', '_' or '-'") }
            }
        }

        func run() throws {
            let (directory, name) = coordinator ? (dir, "coordinator") : node != nil ? ("\(dir)/nodes", node!) : ("\(dir)/admins", admin!)
            let pair: ZMQCurve.KeyPair
            do throws(BusError) { pair = try CurveKeys.generate(in: directory, name: name) } catch {
                throw CommandFailure(code: 1, message: error.message)
            }
            Output.text("wrote \(directory)/\(name).key (secret, 0600) and \(directory)/\(name).pub: \(pair.publicKey)\n")
        }
    }
}

enum NameCheck {
    static func isPlain(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 63 && !name.hasPrefix("-") && !name.hasPrefix(".")
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }
    }
}
