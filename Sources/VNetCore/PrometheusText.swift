/// Prometheus' text exposition format (version 0.0.4), rendered from values: what a scrape of a daemon's
/// `/metrics` returns. Pure, so the escaping and the histogram's cumulative buckets are unit-tested.
public struct MetricFamily: Sendable, Equatable {
    public enum Kind: String, Sendable { case counter, gauge, histogram }

    /// One series: its labels (sorted by name when rendered) and value.
    public struct Sample: Sendable, Equatable {
        public var labels: [String: String]
        public var value: Double
        public init(labels: [String: String] = [:], value: Double) { self.labels = labels; self.value = value }
    }

    /// One histogram series: observations counted per upper bound (not cumulative), their sum and count.
    public struct Histogram: Sendable, Equatable {
        public var labels: [String: String]
        public var bounds: [Double]
        public var bucketCounts: [UInt64]
        public var sum: Double
        public var count: UInt64
        public init(labels: [String: String] = [:], bounds: [Double]) {
            self.labels = labels; self.bounds = bounds
            bucketCounts = Array(repeating: 0, count: bounds.count); sum = 0; count = 0
        }
        public mutating func observe(_ value: Double) {
            if let index = bounds.firstIndex(where: { value <= $0 }) { bucketCounts[index] += 1 }
            sum += value
            count += 1
        }
    }

    public var name: String
    public var kind: Kind
    public var help: String
    public var samples: [Sample] = []
    public var histograms: [Histogram] = []

    public init(name: String, kind: Kind, help: String) { self.name = name; self.kind = kind; self.help = help }
}

public enum PrometheusText {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ families: [MetricFamily]) -> String {
        var out = ""
        for family in families.sorted(by: { $0.name < $1.name }) {
            out += "# HELP \(family.name) \(escapeHelp(family.help))\n# TYPE \(family.name) \(family.kind.rawValue)\n"
            for sample in family.samples.sorted(by: { labelText($0.labels) < labelText($1.labels) }) {
                out += "\(family.name)\(labelText(sample.labels)) \(number(sample.value))\n"
            }
            for histogram in family.histograms.sorted(by: { labelText($0.labels) < labelText($1.labels) }) {
                var cumulative: UInt64 = 0
                for (bound, count) in zip(histogram.bounds, histogram.bucketCounts) {
                    cumulative += count
                    out += "\(family.name)_bucket\(labelText(histogram.labels, extra: ("le", number(bound)))) \(cumulative)\n"
                }
                out += "\(family.name)_bucket\(labelText(histogram.labels, extra: ("le", "+Inf"))) \(histogram.count)\n"
                out += "\(family.name)_sum\(labelText(histogram.labels)) \(number(histogram.sum))\n"
                out += "\(family.name)_count\(labelText(histogram.labels)) \(histogram.count)\n"
            }
        }
        return out
    }

    static func labelText(_ labels: [String: String], extra: (String, String)? = nil) -> String {
        var pairs = labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let extra { pairs.append(extra) }
        guard !pairs.isEmpty else { return "" }
        return "{" + pairs.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// Label values escape backslash, double quote and newline; HELP text backslash and newline.
    static func escapeLabel(_ value: String) -> String { escape(value, quote: true) }

    static func escapeHelp(_ value: String) -> String { escape(value, quote: false) }

    static func escape(_ value: String, quote: Bool) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\"" where quote: out += "\\\""
            default: out.append(character)
            }
        }
        return out
    }

    /// Integers without a fraction (revisions are large and must not become 1.2e+06).
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
