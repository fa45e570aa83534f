import Foundation
import Testing
@testable import VNetCore

/// What this lane needs, checked once. In CI (CI=true) a missing piece is a failure, never a skip.
enum RootLane {
    static let tools = ["/usr/sbin/dhcpd", "/usr/sbin/iptables-restore", "/usr/sbin/ip"]
    static let missing: [String] = {
        var missing = tools.filter { !FileManager.default.isExecutableFile(atPath: $0) }
        if getuid() != 0 { missing.append("root") }
        return missing
    }()
    static let inCI = ProcessInfo.processInfo.environment["CI"] != nil
    /// Run when everything is here, and always in CI (where the first check fails loudly).
    static let enabled = missing.isEmpty || inCI
    static let reason: Comment = "needs root and isc-dhcp-server, iptables, iproute2 (Tests/run-all.sh installs them)"
}

struct ToolRun {
    var status: Int32
    var output: String
}

func runTool(_ path: String, _ arguments: [String], input: String? = nil) throws -> ToolRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ["LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolRun(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

/// A network namespace of the test's own, removed when the test ends, so nothing reaches the host's tables.
final class ScratchNamespace {
    let name = "vnt-\(UInt32.random(in: 0...UInt32.max))"
    init() throws {
        let created = try runTool("/usr/sbin/ip", ["netns", "add", name])
        guard created.status == 0 else { throw ToolError(message: "ip netns add \(name): \(created.output)") }
    }
    func run(_ path: String, _ arguments: [String], input: String? = nil) throws -> ToolRun {
        try runTool("/usr/sbin/ip", ["netns", "exec", name, path] + arguments, input: input)
    }
    deinit { _ = try? runTool("/usr/sbin/ip", ["netns", "del", name]) }
}

struct ToolError: Error { var message: String }

@Suite("rendered documents accepted by the real tools", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct RealToolAcceptanceTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("VNetCoreTests/Golden")

    @Test func laneIsComplete() {
        #expect(RootLane.missing.isEmpty, "missing for the root lane: \(RootLane.missing.joined(separator: ", "))")
    }

    func dhcpdAccepts(_ text: String) throws -> ToolRun {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-dhcpd-\(UUID().uuidString).conf")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        return try runTool("/usr/sbin/dhcpd", ["-t", "-q", "-cf", file.path])
    }

    @Test(arguments: ["static", "managed", "managed-novlan"])
    func dhcpdParsesTheGoldenConfigs(mode: String) throws {
        let text = try String(contentsOf: Self.golden.appendingPathComponent("\(mode)/frontend.dhcpd.conf"), encoding: .utf8)
        let result = try dhcpdAccepts(text)
        #expect(result.status == 0, "dhcpd -t rejected \(mode): \(result.output)")
    }

    @Test func dhcpdRejectsABrokenConfig() throws {
        // The negative control: proves the harness would notice a rendering mistake.
        let result = try dhcpdAccepts("subnet 10.0.0.0 netmask 255.255.255.0 { option routers 10.0.0.1 }\n")
        #expect(result.status != 0)
    }

    @Test(arguments: ["managed", "managed-novlan"])
    func iptablesRestoreAcceptsTheGoldenDocuments(mode: String) throws {
        let namespace = try ScratchNamespace()
        for table in ["filter", "nat"] {
            let text = try String(contentsOf: Self.golden.appendingPathComponent("\(mode)/frontend.\(table).rules"), encoding: .utf8)
            let result = try namespace.run("/usr/sbin/iptables-restore", ["--test", "--noflush"], input: text)
            #expect(result.status == 0, "iptables-restore rejected \(mode) \(table): \(result.output)")
        }
    }

    /// Every kind of rule, hashed chain names and a large table, actually committed in a scratch namespace
    /// and read back: the chains exist with the rule counts the renderer wrote.
    @Test func everyRuleKindAndHashedChainNamesApply() throws {
        let layout = NetworkLayout(subnet: IPv4Network("10.20.0.0/16")!, addressesPerNetwork: 64)
        let groups = (0..<40).map { index in
            FirewallConfig.GroupChain(
                group: GroupID(user: index % 2 == 0 ? "a-very-long-user-name-indeed" : "admin", name: "group \(index) with spaces & marks!"),
                chain: ChainName.forGroup(GroupID(user: index % 2 == 0 ? "a-very-long-user-name-indeed" : "admin", name: "group \(index) with spaces & marks!")),
                network: layout.network(index),
                rules: [
                    .init(source: IPv4Network("0.0.0.0/0")!, traffic: .tcp(22...22)),
                    .init(source: IPv4Network("198.51.100.0/24")!, traffic: .tcp(8000...8080)),
                    .init(source: layout.network((index + 1) % 40), traffic: .udp(53...53)),
                    .init(source: layout.network(0), traffic: .icmp(type: nil, code: nil)),
                    .init(source: layout.network(1), traffic: .icmp(type: 8, code: nil)),
                    .init(source: layout.network(2), traffic: .icmp(type: 3, code: 4)),
                ])
        }
        let firewall = FirewallConfig(subnet: layout.subnet, groups: groups,
                                      publicMappings: [.init(publicAddress: IPv4Address("203.0.113.10")!, privateAddress: IPv4Address("10.20.0.2")!)],
                                      metadataTarget: IPv4Address("192.0.2.10"))
        let namespace = try ScratchNamespace()
        for (table, text) in [("filter", IPTablesRenderer.filter(firewall)), ("nat", IPTablesRenderer.nat(firewall))] {
            let result = try namespace.run("/usr/sbin/iptables-restore", ["--noflush"], input: text)
            #expect(result.status == 0, "\(table): \(result.output)")
        }
        let saved = try namespace.run("/usr/sbin/iptables-save", ["-t", "filter"])
        #expect(saved.status == 0)
        for group in groups {
            let rules = saved.output.split(separator: "\n").filter { $0.hasPrefix("-A \(group.chain) ") }
            #expect(rules.count == 6, "chain \(group.chain) has \(rules.count) rules")
        }
        #expect(saved.output.contains(":FORWARD DROP"))
        // Applying the same document again leaves the same table (the chains are flushed and refilled).
        _ = try namespace.run("/usr/sbin/iptables-restore", ["--noflush"], input: IPTablesRenderer.filter(firewall))
        let again = try namespace.run("/usr/sbin/iptables-save", ["-t", "filter"])
        func rules(_ text: String) -> [Substring] { text.split(separator: "\n").filter { $0.hasPrefix("-A") } }
        #expect(rules(again.output) == rules(saved.output))
    }

    @Test func iptablesRejectsAnOverlongChain() throws {
        // The negative control for the iptables harness, and the limit ChainName keeps under.
        let namespace = try ScratchNamespace()
        let name = String(repeating: "c", count: NameRules.maxChainNameLength + 1)
        let result = try namespace.run("/usr/sbin/iptables-restore", ["--test", "--noflush"], input: "*filter\n:\(name) - [0:0]\nCOMMIT\n")
        #expect(result.status != 0)
        let fits = try namespace.run("/usr/sbin/iptables-restore", ["--test", "--noflush"],
                                     input: "*filter\n:\(String(name.dropLast())) - [0:0]\nCOMMIT\n")
        #expect(fits.status == 0, "\(fits.output)")
    }
}
