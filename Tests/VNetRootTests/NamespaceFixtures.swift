import Foundation
import VNetLinux

/// What the namespace lanes share: the configs of a small MANAGED-NOVLAN cluster, and starting a built daemon
/// inside a namespace with its output in a log file.
enum NamespaceFixtures {
    /// The built binaries next to this test bundle (or the package's debug build).
    static let binaries: URL = {
        for directory in [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(), Bundle.main.bundleURL.deletingLastPathComponent()] {
            if FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("vnet-agent").path) { return directory }
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug")
    }()

    /// Writes `fe.conf` (front end, eth0, 10.20.0.0/16 in networks of 64) and `node.conf` (br0) into `directory`.
    static func writeNoVLANConfigs(in directory: String, publicIPs: String? = nil) throws {
        try """
        VNET_MODE="MANAGED-NOVLAN"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="10.20.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="192.0.2.53"
        VNET_ADDRSPERNET="64"
        \(publicIPs.map { "VNET_PUBLICIPS=\"\($0)\"" } ?? "")

        """.write(toFile: "\(directory)/fe.conf", atomically: true, encoding: .utf8)
        try "VNET_MODE=\"MANAGED-NOVLAN\"\nVNET_BRIDGE=\"br0\"\n".write(toFile: "\(directory)/node.conf", atomically: true, encoding: .utf8)
    }

    /// Starts `program` (a built binary) in `namespace`, confined to `capabilities` when given (as systemd's
    /// CapabilityBoundingSet would), appending its output to `log` (kept across restarts).
    static func launch(_ program: String, _ arguments: [String], in namespace: ScratchNamespace, log: String,
                       capabilities: [String]? = nil) throws -> Process {
        let confinement = capabilities.map { ["/usr/bin/setpriv", "--bounding-set=-all," + $0.map { "+" + $0 }.joined(separator: ",")] } ?? []
        return try launchTool(confinement + [binaries.appendingPathComponent(program).path] + arguments, in: namespace, log: log)
    }

    /// Starts any program (full command line) in `namespace`, output appended to `log`.
    static func launchTool(_ command: [String], in namespace: ScratchNamespace, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace.name] + command
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }
}
