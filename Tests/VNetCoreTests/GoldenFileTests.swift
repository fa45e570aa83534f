import Foundation
import Testing
@testable import VNetCore

/// The examples in deploy/examples planned and rendered, compared byte for byte with Tests/VNetCoreTests/Golden.
/// After an intended change: `VNET_UPDATE_GOLDEN=1 swift test --filter GoldenFileTests`, then review the diff.
@Suite("golden files")
struct GoldenFileTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static let examples: [(mode: String, scenario: String)] = [
        ("system", "scenario-system.json"),
        ("static", "scenario-static.json"),
        ("managed", "scenario.json"),
        ("managed-novlan", "scenario.json"),
    ]

    func plan(_ mode: String, _ scenarioFile: String) throws -> (VNetConfig, ClusterState) {
        let examples = Self.repository.appendingPathComponent("deploy/examples")
        let text = try String(contentsOf: examples.appendingPathComponent("\(mode)/eucalyptus.frontend.conf"), encoding: .utf8)
        let check = ConfigValidator.validate(text: text, role: .frontend)
        let config = try #require(check.config, "\(check.diagnostics)")
        let data = try Data(contentsOf: examples.appendingPathComponent(scenarioFile))
        let scenario = try Scenario.decode([UInt8](data))
        return (config, try ScenarioLoader.load(scenario, config: config))
    }

    func compare(_ actual: String, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let file = Self.golden.appendingPathComponent(name)
        if ProcessInfo.processInfo.environment["VNET_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try actual.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        if actual != expected {
            let actualLines = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let first = Array(zip(actualLines, expectedLines)).firstIndex { $0.0 != $0.1 } ?? min(actualLines.count, expectedLines.count)
            let got = first < actualLines.count ? String(actualLines[first]) : "<end>"
            let want = first < expectedLines.count ? String(expectedLines[first]) : "<end>"
            Issue.record("\(name) differs at line \(first + 1):\n  got:  \(got)\n  want: \(want)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: examples)
    func example(mode: String, scenario: String) throws {
        let (config, cluster) = try plan(mode, scenario)
        let report = try PlanReport(config: config, cluster: cluster)
        try compare(report.text, "\(mode)/plan.txt")
        let frontend = try #require(try HostPlanner(config: config).desiredState(of: cluster.frontend, in: cluster))
        if let dhcpd = frontend.dhcpd { try compare(DHCPDConfRenderer.render(dhcpd), "\(mode)/frontend.dhcpd.conf") }
        if let firewall = frontend.firewall {
            try compare(IPTablesRenderer.filter(firewall), "\(mode)/frontend.filter.rules")
            try compare(IPTablesRenderer.nat(firewall), "\(mode)/frontend.nat.rules")
        }
        // Which artefacts exist is part of the contract: only STATIC and the managed modes run dhcpd, only the
        // managed modes touch iptables.
        #expect((frontend.dhcpd != nil) == (mode != "system"))
        #expect((frontend.firewall != nil) == (mode == "managed" || mode == "managed-novlan"))
    }

    @Test func planningIsDeterministic() throws {
        let (config, cluster) = try plan("managed", "scenario.json")
        let first = try PlanReport(config: config, cluster: cluster).text
        for _ in 0..<3 {
            let (_, again) = try plan("managed", "scenario.json")
            #expect(try PlanReport(config: config, cluster: again).text == first)
        }
    }
}
