import ArgumentParser
import VNetCore

/// `vnetctl config check [--role frontend|node] [--json] FILE`
struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a eucalyptus.conf for a front end or a node.",
        discussion: """
        Exit status: 0 valid (warnings allowed), 1 errors found, 2 bad command line or unreadable file.
        Diagnostics are printed as FILE:LINE: KEY: message (line omitted for a missing key).
        """)

    @Option(help: "Which host the file is for: frontend or node.")
    var role: HostRole = .frontend

    @Flag(help: "Print one JSON object: valid, mode, role, errors, warnings, capacity.")
    var json = false

    @Argument(help: "The eucalyptus.conf to check.")
    var file: String

    func run() throws {
        let text = try Output.readText(file)
        let check = ConfigValidator.validate(text: text, role: role)
        if json {
            try Output.json(ConfigCheckReport(check))
        } else {
            Output.text(ConfigCheckReport.text(check, file: file))
        }
        if !check.isValid { throw CommandFailure.invalidInput() }
    }
}
