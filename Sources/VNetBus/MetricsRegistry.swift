import Foundation
import VNetCore

/// A daemon's metrics, written by its event loop and read by the metrics server's thread (hence the lock).
/// Families are declared once with their kind and help; series are keyed by their labels.
///
/// A registry that is not enabled (the daemon runs without `--metrics`) ignores everything at once: nobody
/// reads it, and an agent's resident size is mostly the code it touches.
public final class MetricsRegistry: @unchecked Sendable {
    public let isEnabled: Bool
    let lock = NSLock()
    var families: [String: MetricFamily] = [:]
    var bounds: [String: [Double]] = [:]

    /// Seconds, for latencies from a millisecond to ten seconds.
    public static let latencyBounds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public init(enabled: Bool = true) { isEnabled = enabled }

    public func declare(_ name: String, _ kind: MetricFamily.Kind, _ help: String, bounds: [Double] = MetricsRegistry.latencyBounds) {
        guard isEnabled else { return }
        lock.withLock {
            if families[name] == nil { families[name] = MetricFamily(name: name, kind: kind, help: help) }
            if kind == .histogram { self.bounds[name] = bounds }
        }
    }

    /// Adds to a counter (declared first).
    public func add(_ name: String, _ labels: [String: String] = [:], _ amount: Double = 1) {
        update(name, labels) { $0 += amount }
    }

    /// Sets a gauge, or a counter kept elsewhere (refusal counts).
    public func set(_ name: String, _ labels: [String: String], _ value: Double) {
        update(name, labels) { $0 = value }
    }

    public func set(_ name: String, _ value: Double) { set(name, [:], value) }

    /// Replaces every series of a gauge (nodes by state, per-node revisions: a node removed disappears).
    public func replace(_ name: String, _ samples: [MetricFamily.Sample]) {
        guard isEnabled else { return }
        lock.withLock { families[name]?.samples = samples }
    }

    public func observe(_ name: String, _ value: Double) { observe(name, [:], value) }

    public func observe(_ name: String, _ labels: [String: String], _ value: Double) {
        guard isEnabled else { return }
        lock.withLock {
            guard var family = families[name] else { return }
            if let index = family.histograms.firstIndex(where: { $0.labels == labels }) {
                family.histograms[index].observe(value)
            } else {
                var histogram = MetricFamily.Histogram(labels: labels, bounds: bounds[name] ?? Self.latencyBounds)
                histogram.observe(value)
                family.histograms.append(histogram)
            }
            families[name] = family
        }
    }

    /// A daemon's refused bus messages, one series per reason; `unauthorized` also counts refusals made
    /// elsewhere (the coordinator's ZAP handler).
    public func setRefusals(_ name: String, _ refusals: RefusalCounters, unauthorized: UInt64) {
        for reason in EnvelopeCodec.Refusal.allCases {
            set(name, ["reason": reason.rawValue], Double(refusals.counts[reason] ?? 0))
        }
        set(name, ["reason": "unauthorized"], Double(unauthorized))
    }

    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        lock.withLock { families[name]?.samples.first(where: { $0.labels == labels })?.value }
    }

    public func render() -> String { PrometheusText.render(lock.withLock { Array(families.values) }) }

    func update(_ name: String, _ labels: [String: String], _ change: (inout Double) -> Void) {
        guard isEnabled else { return }
        lock.withLock {
            guard var family = families[name] else { return }
            if let index = family.samples.firstIndex(where: { $0.labels == labels }) {
                change(&family.samples[index].value)
            } else {
                var value = 0.0
                change(&value)
                family.samples.append(.init(labels: labels, value: value))
            }
            families[name] = family
        }
    }
}
