import ArgumentParser

/// `vnetctl config ...`: commands about eucalyptus.conf.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with eucalyptus.conf.",
        subcommands: [ConfigCheckCommand.self])
}
