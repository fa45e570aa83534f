import Foundation
import Testing

/// Runs the built `vnetctl` as an operator would and checks exit codes, text and JSON.
@Suite("vnetctl command line")
struct VNetCtlTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let examples = repository.appendingPathComponent("deploy/examples").path

    /// The vnetctl built next to this test bundle.
    static let binary: URL = {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle.main.bundleURL.deletingLastPathComponent(),
            Bundle.main.bundleURL,
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent("vnetctl")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return repository.appendingPathComponent(".build/debug/vnetctl")
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    func temporaryFile(_ contents: String, name: String = "eucalyptus.conf") throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnetctl-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(name)
        try contents.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test(arguments: ["system", "static", "managed", "managed-novlan"])
    func examplesAreValidForBothRoles(mode: String) throws {
        for role in ["frontend", "node"] {
            let result = try run(["config", "check", "--role", role, "\(Self.examples)/\(mode)/eucalyptus.\(role).conf"])
            #expect(result.status == 0, "\(mode) \(role): \(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("valid"))
        }
    }

    @Test func jsonShapeForTheSeedExample() throws {
        let path = try temporaryFile("""
        VNET_MODE="MANAGED"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="192.168.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="192.0.2.53"
        VNET_ADDRSPERNET="64"
        VNET_PUBLICIPS="203.0.113.1-203.0.113.4"
        """)
        let result = try run(["config", "check", "--json", path])
        #expect(result.status == 0)
        let object = try json(result.stdout)
        #expect(object["valid"] as? Bool == true)
        #expect(object["mode"] as? String == "MANAGED")
        #expect((object["errors"] as? [Any])?.isEmpty == true)
        #expect(object["warnings"] is [Any])
        let capacity = try #require(object["capacity"] as? [String: Any])
        #expect(capacity["networks"] as? Int == 1016)
        #expect(capacity["instancesPerNetwork"] as? Int == 61)
        #expect(capacity["addressesPerNetwork"] as? Int == 64)
        #expect(capacity["publicIPs"] as? Int == 4)
        #expect(capacity["firstVlan"] as? Int == 10)
        #expect(capacity["lastVlan"] as? Int == 1025)
        #expect(capacity["staticHosts"] == nil)
    }

    @Test func errorsExitOneAndNameFileLineAndKey() throws {
        let path = try temporaryFile("VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\nVNET_NETMASK=\"255.0.255.0\"\n")
        let text = try run(["config", "check", path])
        #expect(text.status == 1)
        #expect(text.stdout.contains("\(path):3: VNET_NETMASK: 255.0.255.0 is not a contiguous netmask"))
        #expect(text.stdout.contains("\(path): VNET_SUBNET: VNET_SUBNET is required"))
        let structured = try run(["config", "check", "--json", path])
        #expect(structured.status == 1)
        let object = try json(structured.stdout)
        #expect(object["valid"] as? Bool == false)
        let errors = try #require(object["errors"] as? [[String: Any]])
        #expect(errors.contains { $0["line"] as? Int == 3 && $0["key"] as? String == "VNET_NETMASK" && ($0["message"] as? String)?.isEmpty == false })
    }

    @Test func unknownModeIsNullInJSON() throws {
        let path = try temporaryFile("VNET_MODE=\"BOGUS\"\n")
        let result = try run(["config", "check", "--json", path])
        #expect(result.status == 1)
        let object = try json(result.stdout)
        #expect(object.keys.contains("mode") && object["mode"] is NSNull, "\(result.stdout)")
        #expect((object["capacity"] as? [String: Any])?.isEmpty == true)
    }

    @Test func staticCapacityInJSON() throws {
        let result = try run(["config", "check", "--json", "\(Self.examples)/static/eucalyptus.frontend.conf"])
        let capacity = try #require(try json(result.stdout)["capacity"] as? [String: Any])
        #expect(capacity["staticHosts"] as? Int == 4)
        #expect(capacity["networks"] == nil)
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try run(["config", "check", "/nonexistent/eucalyptus.conf"]).status == 2)
        #expect(try run(["config", "check", "/nonexistent/eucalyptus.conf"]).stderr.contains("cannot read /nonexistent/eucalyptus.conf"))
        #expect(try run(["config", "check", NSTemporaryDirectory()]).status == 2)
        #expect(try run(["config", "check", "--role", "controller", "\(Self.examples)/system/eucalyptus.node.conf"]).status == 2)
        #expect(try run(["config", "check"]).status == 2)
        #expect(try run(["config", "check", "--bogus", "x"]).status == 2)
        #expect(try run(["plan", "--config", "\(Self.examples)/managed/eucalyptus.frontend.conf"]).status == 2)
        #expect(try run(["--help"]).status == 0)
    }

    @Test func planShowsEveryHost() throws {
        let result = try run(["plan", "--config", "\(Self.examples)/managed/eucalyptus.frontend.conf",
                              "--scenario", "\(Self.examples)/scenario.json"])
        #expect(result.status == 0, "\(result.stderr)")
        for fragment in ["== fe (front end) ==", "== node1 (node) ==", "== node2 (node) ==",
                         "ip link add link eth0 name eth0.10 type vlan id 10", "shared-network" , "*filter", "*nat",
                         "i-3f1a0b2c  node1  admin/web  10.20.2.2   d0:0d:3f:1a:0b:2c  10    eucabr10  203.0.113.10"] {
            if fragment == "shared-network" {
                #expect(!result.stdout.contains(fragment), "MANAGED declares VLAN subnets alone")
            } else {
                #expect(result.stdout.contains(fragment), "\(fragment)")
            }
        }
    }

    @Test func planForOneHostAsJSON() throws {
        let result = try run(["plan", "--config", "\(Self.examples)/managed/eucalyptus.frontend.conf",
                              "--scenario", "\(Self.examples)/scenario.json", "--host", "node2", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try json(result.stdout)
        let hosts = try #require(object["hosts"] as? [[String: Any]])
        #expect(hosts.count == 1)
        #expect(hosts.first?["host"] as? String == "node2")
        let operations = try #require(hosts.first?["operations"] as? [[String: Any]])
        #expect(operations.contains { $0["op"] as? String == "createVLAN" && $0["name"] as? String == "eth0.11" && $0["vlan"] as? Int == 11 })
        #expect(operations.contains { $0["op"] as? String == "attach" && $0["port"] as? String == "vnet0" && $0["bridge"] as? String == "eucabr11" })
        #expect((object["instances"] as? [Any])?.count == 3)
    }

    @Test func planErrors() throws {
        let unknownHost = try run(["plan", "--config", "\(Self.examples)/managed/eucalyptus.frontend.conf",
                                   "--scenario", "\(Self.examples)/scenario.json", "--host", "node9"])
        #expect(unknownHost.status == 2)
        #expect(unknownHost.stderr.contains("no host 'node9'"))
        let scenario = try temporaryFile(#"{"nodes":[{"name":"n1"}],"instances":[{"id":"i-00000001","node":"n1","grup":"a/b"}]}"#, name: "s.json")
        let bad = try run(["plan", "--config", "\(Self.examples)/managed/eucalyptus.frontend.conf", "--scenario", scenario])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("instances[0].grup: unknown field"), "\(bad.stderr)")
        let wrongMode = try run(["plan", "--config", "\(Self.examples)/static/eucalyptus.frontend.conf",
                                 "--scenario", "\(Self.examples)/scenario.json"])
        #expect(wrongMode.status == 1)
        #expect(wrongMode.stderr.contains("groups[0]") && wrongMode.stderr.contains("STATIC"), "\(wrongMode.stderr)")
        let badConfig = try temporaryFile("VNET_MODE=\"MANAGED\"\n")
        let invalid = try run(["plan", "--config", badConfig, "--scenario", "\(Self.examples)/scenario.json"])
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("not a valid front-end config"))
    }
}
