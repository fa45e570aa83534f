/// Judges `verify-vlan --mtu` from what every host found (`MTUSearch`): per VID and direction, the largest frame
/// that passes, against each host's interface MTU and the MTU the cluster expects (VNET_MTU, else the front
/// end's interface MTU). Says, one sentence each: interface MTUs that differ (even when every frame passes: the
/// larger side's frames are dropped where they arrive), a host below the expected MTU, and for each VID the paths
/// that carry less than both ends and the expectation allow, with the host whose every path is short named as
/// the likely culprit (its switch port). Sizes are what an MTU counts: the bytes after the Ethernet header and
/// 802.1Q tag. Pure.
public enum MTUVerification {
    /// One direction on one VID (0: untagged): the largest size that arrived, the smallest that did not (nil:
    /// the sender's own MTU arrived).
    public struct Path: Sendable, Equatable, Codable {
        public var from: String
        public var to: String
        public var vlan: Int
        public var passed: Int
        public var failed: Int?
        public init(from: String, to: String, vlan: Int, passed: Int, failed: Int?) {
            self.from = from; self.to = to; self.vlan = vlan; self.passed = passed; self.failed = failed
        }
    }

    /// A host's interface as its agent reported it.
    public struct Interface: Sendable, Equatable, Codable {
        public var host: String
        public var name: String
        public var mtu: Int
        public init(host: String, name: String, mtu: Int) { self.host = host; self.name = name; self.mtu = mtu }
    }

    /// The MTU the paths are held to, and where it came from (for the report).
    public struct Expectation: Sendable, Equatable, Codable {
        public var mtu: Int
        public var source: String
        public init(mtu: Int, source: String) { self.mtu = mtu; self.source = source }
    }

    /// What the operator set (`--expect-mtu`, else VNET_MTU); else the front end's interface MTU when it took
    /// part; else the largest reported (the MTU the hosts were set up for, as far as they show it). Nil when
    /// nothing was set and no host reported an MTU.
    public static func expectation(configured: Expectation?, frontend: String, interfaces: [Interface]) -> Expectation? {
        if let configured { return configured }
        if let front = interfaces.first(where: { $0.host == frontend }) {
            return Expectation(mtu: front.mtu, source: "\(front.host)'s \(front.name) MTU (VNET_MTU unset)")
        }
        guard let largest = interfaces.max(by: { $0.mtu < $1.mtu }) else { return nil }
        return Expectation(mtu: largest.mtu, source: "the largest interface MTU, \(largest.host)'s \(largest.name) (VNET_MTU unset, the front end not taking part)")
    }

    /// What a path should carry: the expectation, unless an end's own MTU is smaller (that is its own finding).
    static func limit(_ path: Path, expected: Int, mtus: [String: Int]) -> Int {
        min(expected, mtus[path.from] ?? expected, mtus[path.to] ?? expected)
    }

    /// What a port's LLDP maximum frame size says against the largest payload measured; nil when it announces
    /// none. Switches differ in counting a tag, and Linux lets 4 bytes over: within 4 bytes agrees.
    public static func announcement(of port: LLDPNeighbor, passes largest: Int, tagged: Bool) -> String? {
        guard let size = port.maxFrameSize, let payload = port.payload(tagged: tagged) else { return nil }
        let said = "\(port.label) announces a maximum frame size of \(size) (LLDP), a payload of about \(payload)"
        if abs(payload - largest) <= 4 { return "\(said): as measured" }
        return payload > largest ? "\(said), more than passes: something between the port and the hosts drops the rest"
            : "\(said), less than passes: its announcement is out of date"
    }

    public static func isShort(_ path: Path, expected: Int, mtus: [String: Int]) -> Bool {
        path.failed != nil && path.passed < limit(path, expected: expected, mtus: mtus)
    }

    static func vid(_ vlan: Int) -> String { vlan == 0 ? "untagged" : "VID \(vlan)" }

    /// `ports`: the switch port each host heard (LLDP): culprits are named with it, and where it announces its
    /// maximum frame size, the finding says whether that agrees with what passes.
    public static func findings(paths: [Path], interfaces: [Interface], expected: Expectation, ports: [String: LLDPNeighbor] = [:]) -> [String] {
        var out: [String] = []
        func named(_ host: String) -> String { LLDPNeighbor.name(host, ports: ports) }
        let mtus = Dictionary(interfaces.map { ($0.host, $0.mtu) }, uniquingKeysWith: { a, _ in a })
        let byHost = Dictionary(interfaces.map { ($0.host, $0) }, uniquingKeysWith: { a, _ in a })
        let sizes = Set(interfaces.map(\.mtu))
        if sizes.count > 1 {
            let groups = sizes.sorted(by: >).map { mtu in
                "\(mtu) on " + interfaces.filter { $0.mtu == mtu }.map { "\($0.host) (\($0.name))" }.sorted().joined(separator: ", ")
            }
            out.append("interface MTUs differ: \(groups.joined(separator: "; ")): frames the larger ones send are dropped where they arrive at a smaller one")
        }
        for interface in interfaces.sorted(by: { $0.host < $1.host }) where interface.mtu < expected.mtu {
            out.append("\(interface.host): \(interface.name) MTU \(interface.mtu), below the expected \(expected.mtu) (\(expected.source))")
        }
        func describe(_ path: Path) -> String {
            let ends = [path.from, path.to].compactMap { host in byHost[host].map { "\(host)'s \($0.name) MTU \($0.mtu)" } }
            return "\(path.from) -> \(path.to) passes \(path.passed) but not \(limit(path, expected: expected.mtu, mtus: mtus))"
                + (ends.isEmpty ? "" : " (\(ends.joined(separator: ", ")))")
        }
        for vlan in Set(paths.map(\.vlan)).sorted() {
            let judged = paths.filter { $0.vlan == vlan }
            let short = judged.filter { isShort($0, expected: expected.mtu, mtus: mtus) }
            guard !short.isEmpty else { continue }
            let hosts = Set(judged.flatMap { [$0.from, $0.to] }).sorted()
            if short.count == judged.count, hosts.count > 2 {
                out.append("\(vid(vlan)): no path passes the expected size (largest that passes: \(short.map(\.passed).max()!)): the switches or trunks carry less than \(expected.mtu) on \(vid(vlan))")
                continue
            }
            // A host every path of which (both ways, or every path towards it, or every path from it) is short
            // while other paths are not: its port, or its NIC.
            func only(_ paths: (String) -> [Path]) -> String? {
                guard hosts.count > 2 else { return nil }
                let suspects = hosts.filter { host in
                    let mine = paths(host)
                    return !mine.isEmpty && mine.allSatisfy { isShort($0, expected: expected.mtu, mtus: mtus) }
                }
                return suspects.count == 1 ? suspects[0] : nil
            }
            let bothWays = only { host in judged.filter { $0.from == host || $0.to == host } }
            let towards = bothWays == nil ? only { host in judged.filter { $0.to == host } } : nil
            let from = bothWays == nil && towards == nil ? only { host in judged.filter { $0.from == host } } : nil
            if let host = bothWays ?? towards ?? from {
                let mine = short.filter { bothWays != nil ? ($0.from == host || $0.to == host) : towards != nil ? $0.to == host : $0.from == host }
                let largest = mine.map(\.passed).max()!
                let fromPass = !short.contains { $0.from == host }, towardsPass = !short.contains { $0.to == host }
                let what = bothWays != nil ? "\(named(host))'s side passes at most \(largest) to and from every other host"
                    : towards != nil ? "frames towards \(named(host)) pass at most \(largest) from every other host" + (fromPass ? " (frames from \(host) pass)" : "")
                    : "frames from \(named(host)) pass at most \(largest) to every other host" + (towardsPass ? " (frames towards \(host) pass)" : "")
                let announced = ports[host].flatMap { announcement(of: $0, passes: largest, tagged: vlan != 0) }.map { "; \($0)" } ?? ""
                out.append("\(vid(vlan)): \(what), while paths between others pass \(expected.mtu): \(host)'s switch port (or its link) has the smaller MTU; e.g. \(describe(mine[0]))\(announced)")
                for path in short where !mine.contains(path) { out.append("\(vid(vlan)): \(describe(path))") }
            } else {
                let sides = hosts.count == 2 ? " (with two hosts either side may be the short one)" : ""
                for path in short { out.append("\(vid(vlan)): \(describe(path))\(sides)") }
            }
        }
        return out
    }
}
