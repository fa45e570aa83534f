import ArgumentParser
import VNetCore

/// `vnetctl plan --config FILE --scenario FILE [--host NAME] [--json]`: a dry run of the whole cluster.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what every host would apply for a scenario, changing nothing.",
        discussion: """
        The scenario (JSON) lists nodes, groups with rules, instances and public-IP associations; see
        deploy/examples/scenario.json. The output shows the allocations and, per host, the kernel operations,
        dhcpd.conf and iptables-restore documents. Exit status: 0 planned, 1 invalid config or scenario,
        2 bad command line or unreadable file.
        """)

    @Option(help: "The front end's eucalyptus.conf.")
    var config: String

    @Option(help: "The scenario file (JSON).")
    var scenario: String

    @Option(help: "Show only this host (the front end's name or a node's).")
    var host: String?

    @Flag(help: "Print the plan as one JSON object.")
    var json = false

    func run() throws {
        let configText = try Output.readText(config)
        let scenarioBytes = try Output.read(scenario)
        let check = ConfigValidator.validate(text: configText, role: .frontend)
        guard let vnetConfig = check.config else {
            let lines = check.diagnostics.errors.map { $0.formatted(file: config) }
            throw CommandFailure.invalidInput("\(config) is not a valid front-end config:\n" + lines.joined(separator: "\n"))
        }
        do {
            let parsed = try Scenario.decode(scenarioBytes)
            let cluster = try ScenarioLoader.load(parsed, config: vnetConfig)
            let report = try PlanReport(config: vnetConfig, cluster: cluster, onlyHost: host)
            if json { try Output.json(report) } else { Output.text(report.text) }
        } catch let error as ClusterError {
            if error.field == "--host" { throw CommandFailure.usage(error.message) }
            throw CommandFailure.invalidInput("\(scenario): \(error)")
        }
    }
}
