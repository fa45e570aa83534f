import Testing
@testable import VNetCore

@Suite("Prometheus text format")
struct PrometheusTextTests {
    @Test func countersAndGaugesRenderWithSortedEscapedLabels() {
        var family = MetricFamily(name: "vnet_nodes", kind: .gauge, help: "Hosts by state.\nSecond line \\ here.")
        family.samples = [.init(labels: ["state": "UP"], value: 3), .init(labels: ["state": "DOWN", "a": "x\"y\\z\nw"], value: 0)]
        let revision = MetricFamily(name: "vnet_revision", kind: .gauge, help: "Revision.")
        var withValue = revision
        withValue.samples = [.init(value: 1_234_567_890)]
        let text = PrometheusText.render([family, withValue])
        #expect(text == """
        # HELP vnet_nodes Hosts by state.\\nSecond line \\\\ here.
        # TYPE vnet_nodes gauge
        vnet_nodes{a="x\\"y\\\\z\\nw",state="DOWN"} 0
        vnet_nodes{state="UP"} 3
        # HELP vnet_revision Revision.
        # TYPE vnet_revision gauge
        vnet_revision 1234567890

        """)
    }

    @Test func histogramBucketsAreCumulativeWithInfSumAndCount() {
        var histogram = MetricFamily.Histogram(labels: ["trigger": "update"], bounds: [0.01, 0.1, 1])
        for value in [0.005, 0.05, 0.05, 0.5, 7] { histogram.observe(value) }
        var family = MetricFamily(name: "apply_seconds", kind: .histogram, help: "h")
        family.histograms = [histogram]
        let lines = PrometheusText.render([family]).split(separator: "\n").map(String.init)
        #expect(lines.contains("apply_seconds_bucket{trigger=\"update\",le=\"0.01\"} 1"))
        #expect(lines.contains("apply_seconds_bucket{trigger=\"update\",le=\"0.1\"} 3"))
        #expect(lines.contains("apply_seconds_bucket{trigger=\"update\",le=\"1\"} 4"))
        #expect(lines.contains("apply_seconds_bucket{trigger=\"update\",le=\"+Inf\"} 5"))
        #expect(lines.contains("apply_seconds_count{trigger=\"update\"} 5"))
        #expect(lines.contains("apply_seconds_sum{trigger=\"update\"} 7.605"))
    }

    @Test func specialValues() {
        #expect(PrometheusText.number(.nan) == "NaN")
        #expect(PrometheusText.number(-.infinity) == "-Inf")
        #expect(PrometheusText.number(0.25) == "0.25")
        #expect(PrometheusText.number(42) == "42")
    }
}
