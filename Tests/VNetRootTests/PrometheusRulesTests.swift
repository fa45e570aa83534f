import Foundation
import Testing

/// The alerting rules shipped in deploy/prometheus, checked and unit-tested by Prometheus' own promtool (Debian's
/// `prometheus` package): each alert fires when and only when its test says, with the labels and text given.
/// A missing promtool fails (it is installed by deploy/install-deps.sh), on a laptop as in CI.
@Suite("Prometheus alerting rules (promtool)")
struct PrometheusRulesTests {
    static let directory = GuestVM.repository.appendingPathComponent("deploy/prometheus").path

    @Test func theRulesAreValidAndFireAsTheirTestsSay() throws {
        let promtool = "/usr/bin/promtool"
        try #require(FileManager.default.isExecutableFile(atPath: promtool), "promtool is missing: deploy/install-deps.sh installs Debian's prometheus package")
        let check = try runTool(promtool, ["check", "rules", "\(Self.directory)/vnet-alerts.yml"])
        #expect(check.status == 0 && check.output.contains("SUCCESS: 6 rules found"), "\(check.output)")
        let test = try runTool(promtool, ["test", "rules", "\(Self.directory)/vnet-alerts.test.yml"])
        #expect(test.status == 0 && test.output.contains("SUCCESS"), "\(test.output)")
    }
}
