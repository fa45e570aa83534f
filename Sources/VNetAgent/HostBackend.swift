import Foundation
import VNetCore

/// What an agent applies desired state through. The Linux backend (netlink, iptables-restore, dhcpd) is one;
/// the recording backend below is another, so the bus can be proven without touching a kernel.
public protocol HostBackend: AnyObject {
    /// Makes the host match `desired`, idempotently, as far as it can: the report names every object it could
    /// not make as desired (the rest is applied). Throws, having changed nothing, when it cannot start at all
    /// (a required link missing, the host unreadable, a state it cannot carry out).
    func apply(_ desired: HostNetworkState, revision: UInt64) throws -> ApplyReport
    /// What is on the host now, from one look at it: the part vnet owns as a state, and every link and address
    /// (the operator's too), for the inventory: the coordinator judges vifs by it, `vnetctl nodes --detail` shows it.
    func inventory() -> HostInventory
    /// dhcpd as the inventory reports it: "running (pid N)", "stopped", "absent".
    var dhcpdState: String { get }
    /// How many rules vnet has in iptables (0 where it writes none).
    var iptablesRules: Int { get }
    /// How many times this backend (re)started dhcpd since the agent started.
    var dhcpdRestarts: Int { get }
    /// Whether a daemon the applied state runs has died (dhcpd): cheap enough to ask every heartbeat, so that
    /// the agent repairs it at once instead of at its next reconcile.
    var daemonDown: Bool { get }
    /// Instance addresses this host learned (SYSTEM mode), reading what arrived since the last call.
    func learnedAddresses() -> [LearnedAddress]
    /// This host's side of `vnetctl diagnose`: what is on it, and what looks wrong against `desired`.
    func diagnose(desired: HostNetworkState?) -> HostDiagnosis
}

/// What an agent reports of its host in an inventory.
public struct HostInventory: Sendable {
    /// The part of the host vnet owns, in the shape of a desired state (nil: not known).
    public var owned: HostNetworkState?
    public var links: [HostLink]
    /// Every IPv4 address, "ADDRESS/PREFIX DEVICE".
    public var addresses: [String]
    public init(owned: HostNetworkState?, links: [HostLink] = [], addresses: [String] = []) {
        self.owned = owned; self.links = links; self.addresses = addresses
    }
}

/// A host's diagnostic bundle: files (command outputs, daemon files) and findings, one sentence each.
public struct HostDiagnosis: Sendable {
    public var files: [(name: String, content: [UInt8])] = []
    public var findings: [String] = []
    public init() {}
}

extension HostBackend {
    public var dhcpdState: String { "absent" }
    public var iptablesRules: Int { 0 }
    public var dhcpdRestarts: Int { 0 }
    public var daemonDown: Bool { false }
    public func learnedAddresses() -> [LearnedAddress] { [] }
    public func diagnose(desired: HostNetworkState?) -> HostDiagnosis {
        var diagnosis = HostDiagnosis()
        diagnosis.files = [("backend.txt", Array("this backend touches no kernel; there is nothing on the host to look at\n".utf8))]
        return diagnosis
    }
}

/// Keeps the applied state in memory and, when given a file, appends one line per apply
/// (`revision operations`), so tests and benchmarks can count applies across restarts.
public final class RecordingBackend: HostBackend {
    public private(set) var state: HostNetworkState?
    public private(set) var applies: [(revision: UInt64, operations: Int)] = []
    let logPath: String?

    public init(logPath: String? = nil) { self.logPath = logPath }

    public func apply(_ desired: HostNetworkState, revision: UInt64) throws -> ApplyReport {
        let operations = state.map { KernelPlanner.operations(from: $0, to: desired) } ?? KernelPlanner.bringUp(desired)
        state = desired
        applies.append((revision, operations.count))
        if let logPath {
            let line = Data("\(revision) \(operations.count)\n".utf8)
            if let handle = FileHandle(forWritingAtPath: logPath) {
                handle.seekToEndOfFile()
                handle.write(line)
                try? handle.close()
            } else {
                FileManager.default.createFile(atPath: logPath, contents: line)
            }
        }
        return ApplyReport(operations: operations.count)
    }

    public func inventory() -> HostInventory { HostInventory(owned: state) }
}
