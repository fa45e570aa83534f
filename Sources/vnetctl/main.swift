import ArgumentParser
import Foundation

/// The operator's command. Subcommands live one per file; this file only wires them up and maps errors to
/// exit codes: 0 success, 1 the input is wrong (invalid config, bad scenario), 2 the command line is wrong
/// or a file cannot be read.
struct VNetCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vnetctl",
        abstract: "Operate the Eucalyptus-style virtual network.",
        discussion: "Exit status: 0 done, 1 refused (invalid input, or the coordinator said no), 2 bad command line or unreadable file, 3 coordinator unreachable, 4 --wait timed out, 5 --wait: applied except some objects (named).",
        subcommands: [ConfigCommand.self, PlanCommand.self, KeysCommand.self, StatusCommand.self, NodesCommand.self,
                      RunInstanceCommand.self, TerminateInstanceCommand.self, DescribeInstancesCommand.self,
                      CreateGroupCommand.self, DeleteGroupCommand.self, AuthorizeCommand.self, RevokeCommand.self, DescribeGroupsCommand.self,
                      AllocateAddressCommand.self, AssociateAddressCommand.self, DisassociateAddressCommand.self,
                      ReleaseAddressCommand.self, DescribeAddressesCommand.self, VerifyVLANCommand.self, DiagnoseCommand.self])
}

do {
    var command = try VNetCtl.parseAsRoot()
    try command.run()
} catch let failure as CommandFailure {
    if !failure.message.isEmpty { Output.error(failure.message) }
    exit(failure.code)
} catch {
    let code = VNetCtl.exitCode(for: error)
    let message = VNetCtl.fullMessage(for: error)
    if code == .success {
        print(message)
        exit(0)
    }
    Output.error(message)
    // ArgumentParser says EX_USAGE (64) for a bad command line; this CLI promises 2.
    exit(code == .validationFailure ? 2 : code.rawValue)
}
