import Foundation
import VNetSystem
import SwiftProtobuf
import VNetHost
import VNetCore
import VNetProto

/// The agent's Linux backend for links and addresses: observe with rtnetlink (`NetlinkObservation`), diff against the desired state
/// (`KernelPlanner`), apply the difference in one `ip -force -batch` run.
///
/// Ownership: it only ever changes what this agent made, as its `OwnershipRecord` says (written before the
/// commands that make an object run), and the hypervisor vifs the desired state names (attached, let go of,
/// never deleted). Nothing is claimed by its name: an operator's `eth0.100`, a bridge of theirs called
/// `eucabr5`, an address they put on VNET_INTERFACE are never changed. A desired object whose name the operator
/// already uses is a conflict, reported and left alone; a vif that is a NIC, a bridge or loopback is refused.
///
/// One object's failure stays that object's: a missing vif, a conflict or a failed command is named in the
/// apply's report, everything else is applied (`ip -force` carries on past a failed line, and the failed lines
/// are mapped back to their objects).
///
/// A front end's router settings (`RouterSysctls`: forwarding on, ICMP redirects off...) are written only when
/// they differ. Its firewall goes through `IPTablesApplier` (iptables-restore --noflush, own chains only); the
/// live rules of vnet's chains, their jumps and FORWARD's policy are compared with what was last written, so
/// anything changed there by hand is drift and is put back: read whenever nf_tables' ruleset generation moved
/// since they were last verified (`RulesetGeneration`; every pass with iptables-legacy), not otherwise. The operator's iptables-preload is
/// honoured as Eucalyptus did (see `IPTablesPreload`), and loaded again with vnet's rules when they are gone
/// (a reboot or a flush).
///
/// dhcpd goes through `DHCPDManager` (validated config, started after the addresses it binds to exist,
/// restarted with SIGTERM on change, started again if it died). A desired state with dhcpd on a backend made
/// without a manager is refused before anything is changed.
public final class LinuxBackend: HostBackend {
    public enum Failure: Error, CustomStringConvertible {
        case missingLinks([String])
        case unsupported(String)
        case command(CommandError)
        case observation(String)
        public var description: String {
            switch self {
            case .missingLinks(let names): "required link\(names.count == 1 ? "" : "s") missing: \(names.joined(separator: ", ")) (vnet never creates the operator's interfaces or VNET_BRIDGE); nothing was changed"
            case .unsupported(let what): "\(what); nothing was changed"
            case .command(let error): "\(error)"
            case .observation(let message): "cannot read the host's links: \(message)"
            }
        }
    }

    /// What this agent made on the host: links by name, addresses as `device address/prefix`. Kept next to the
    /// state file, so ownership survives a restart; an entry whose object is gone is forgotten.
    struct OwnershipRecord: Codable, Equatable {
        var links: Set<String> = []
        var addresses: Set<String> = []
        /// One spelling for a desired address and one found on the host, so the two compare.
        static func key(device: String, address: IPv4Address, prefixLength: Int) -> String { "\(device) \(address)/\(prefixLength)" }
        static func key(_ address: HostNetworkState.Address) -> String { key(device: address.device, address: address.address, prefixLength: address.prefixLength) }
        static func key(_ address: ObservedAddress) -> String { key(device: address.device, address: address.address, prefixLength: address.prefixLength) }
    }

    let runner: CommandRunner
    let stateFile: String?
    let dhcpd: DHCPDManager?
    public private(set) var lastApplied: HostNetworkState?
    /// Eucalyptus' iptables-preload: loaded (atomically with vnet's chains) when first seen, when changed, and
    /// when vnet's chains are gone.
    let preloadPath: String?
    var firewallRecord: FirewallRecord { didSet { firewallRecordUnsaved = true } }
    /// What is on disk of the three records, so a pass that changed nothing writes nothing (the firewall
    /// record alone is megabytes at 80 000 rules).
    var firewallRecordUnsaved = false
    var stateUnsaved = false
    var savedOwnership: OwnershipRecord?
    /// The nf_tables generation at which vnet's part of the live firewall was last read and found as recorded
    /// (nil: not known, so the next pass reads it). Kept in memory only: after a reboot the counter starts
    /// again and an old number could come round to mean another ruleset.
    var verifiedGeneration: UInt32?
    /// nf_tables' ruleset generation in the namespace of `runner`'s commands (never known with iptables-legacy).
    lazy var rulesetGeneration = givenGeneration ?? RulesetGeneration.kernel(for: runner)
    let givenGeneration: RulesetGeneration?
    var ownership: OwnershipRecord
    /// The objects the last apply could not make as desired: a retry that makes them is not drift.
    var lastFailedObjects: Set<String> = []
    /// SYSTEM mode on a node: learns instance addresses from DHCP acknowledgements (opened on first need).
    var learner: AddressLearner?
    var learnerFailure: String?
    var pendingNotes: [String] = []

    /// The host's VNET_INTERFACE and VNET_BRIDGE from its own eucalyptus.conf: never a vif, whatever the desired
    /// state says (the coordinator refuses them too; this is the host's own word).
    let hostInterface: String?
    let hostBridge: String?

    /// `generation` is for measuring the pass without it (`vnet-bench reconcile`); by default the kernel's.
    public init(runner: CommandRunner = ProcessRunner(), stateFile: String? = nil, dhcpd: DHCPDManager? = nil, preloadPath: String? = nil,
                interface: String? = nil, bridge: String? = nil, generation: RulesetGeneration? = nil) {
        self.runner = runner
        givenGeneration = generation
        hostInterface = interface
        hostBridge = bridge
        self.stateFile = stateFile
        self.dhcpd = dhcpd
        self.preloadPath = preloadPath
        firewallRecord = Self.loadFirewallRecord(stateFile.map { $0 + ".iptables.json" })
        if let stateFile, let data = FileManager.default.contents(atPath: stateFile),
           let wire = try? Vnet_V1_HostNetworkState(serializedBytes: [UInt8](data)) {
            lastApplied = try? HostNetworkState(wire: wire)
        }
        if let path = stateFile.map({ $0 + ".owned.json" }), let data = FileManager.default.contents(atPath: path),
           let record = try? JSONDecoder().decode(OwnershipRecord.self, from: data) {
            ownership = record
            savedOwnership = record
        } else {
            // An agent from before the record: what it applied is what it made (it claimed more, by name; that
            // is not carried over).
            ownership = OwnershipRecord()
            if let applied = lastApplied {
                ownership.links = Set(applied.vlanDevices.map(\.name) + applied.bridges.map(\.name) + applied.vifs.filter(\.createTap).map(\.name))
                ownership.addresses = Set(applied.addresses.map(OwnershipRecord.key))
            }
        }
    }

    public func apply(_ desired: HostNetworkState, revision: UInt64) throws -> ApplyReport {
        if desired.dhcpd != nil, dhcpd == nil {
            throw Failure.unsupported("this agent was started without dhcpd settings, and this host's state needs dhcpd")
        }
        var report = ApplyReport(notes: pendingNotes)
        pendingNotes = []
        let (links, addresses) = try observeHost()
        let present = Set(links.map(\.name))
        let missing = desired.requiredLinks.filter { !present.contains($0) }
        guard missing.isEmpty else { throw Failure.missingLinks(missing) }
        // The operator's iptables-preload is read and checked before anything changes.
        let preload = try pendingPreload(for: desired)
        // What was recorded and is gone (deleted by hand, or never made before a crash) is no longer ours.
        let presentAddresses = Set(addresses.map(OwnershipRecord.key))
        ownership.links.formIntersection(present)
        ownership.addresses.formIntersection(presentAddresses)

        let steady = lastApplied == desired
        let planned = plan(desired, links: links, addresses: addresses, steady: steady, report: &report)
        var effective = planned.effective
        do {
            report.operations += try runBatch(planned.operations, present: present, desired: desired, oneByOne: false, report: &report)
        } catch let aborted as BatchAborted {
            // ip stopped at a line without naming it (some errors end it at once, -force or not): what ran is on
            // the host, so the host is read again and what is left is run a line at a time, each its own.
            var retry = ApplyReport(notes: report.notes)
            retry.drift = report.drift
            let (links, addresses) = try observeHost()
            ownership.links.formIntersection(Set(links.map(\.name)))
            let again = plan(desired, links: links, addresses: addresses, steady: false, report: &retry)
            effective = again.effective
            retry.operations = try runBatch(again.operations, present: Set(links.map(\.name)), desired: desired, oneByOne: true, report: &retry)
            retry.notes.append("ip -batch stopped without naming a line (\(aborted.error)); the rest was applied a line at a time")
            report = retry
        }
        applyRouterSettings(effective, steady: steady, report: &report)
        // The firewall, after the links and addresses it refers to exist.
        do {
            report.operations += try applyFirewall(effective, steady: steady, preload: preload, report: &report)
        } catch {
            firewallRecord.snapshot = nil  // written again on the next apply
            verifiedGeneration = nil
            report.failures.append(.init(.failed, object: "iptables", error: "\(error)"))
        }
        // dhcpd, once the addresses it serves on exist.
        if let dhcpd {
            do {
                if let wanted = effective.dhcpd {
                    let wasRunning = dhcpd.runningPID != nil
                    switch try dhcpd.apply(wanted) {
                    case .unchanged: break
                    case .hostsChanged: report.operations += 1
                    case .started(let omapiFailure):
                        report.operations += 1
                        if !wasRunning, lastApplied?.dhcpd == wanted, !lastFailedObjects.contains("dhcpd") { report.drift.append("dhcpd was not running; started it again") }
                        if let omapiFailure { report.notes.append("dhcpd did not take the host change over OMAPI, so it was restarted: \(omapiFailure)") }
                    }
                } else if desired.dhcpd == nil, dhcpd.runningPID != nil {
                    dhcpd.stop()
                    report.operations += 1
                }
            } catch {
                report.failures.append(.init(.failed, object: "dhcpd", error: "\(error)"))
            }
        }
        saveOwnership()
        remember(desired, steady: steady)
        saveFirewallRecord()
        lastFailedObjects = Set(report.failures.map(\.object))
        if desired.mode == .system, desired.role == .node { startLearning(&report) }
        learner?.keepOnly(Set(desired.vifs.map(\.mac)))
        return report
    }

    /// What this apply will do to the links and addresses: the applicable part of `desired` and the operations
    /// that take the owned part of the host there (drift, when the state is the one last applied).
    func plan(_ desired: HostNetworkState, links: [ObservedLink], addresses: [ObservedAddress], steady: Bool,
              report: inout ApplyReport) -> (effective: HostNetworkState, operations: [KernelOperation]) {
        let effective = applicable(desired, links: links, addresses: addresses, report: &report)
        let observed = ownedState(like: effective, links: links, addresses: addresses)
        var operations = KernelPlanner.operations(from: observed, to: effective)
        // A link of ours that someone set down is set up again.
        let ours = Set(effective.vlanDevices.map(\.name) + effective.bridges.map(\.name) + effective.vifs.filter(\.createTap).map(\.name))
        let created = Set(operations.compactMap { if case .setUp(let name) = $0 { name } else { nil } })
        for link in links where ours.contains(link.name) && !link.isUp && !created.contains(link.name) {
            operations.append(.setUp(link.name))
        }
        if steady {
            report.drift += operations.filter { operation in
                if case .requireLink = operation { return false }
                return !lastFailedObjects.contains(Self.subject(of: operation, in: desired).object)
            }.map(\.description)
        }
        return (effective, operations)
    }

    struct BatchAborted: Error { var error: CommandError }

    /// `desired` without what must not or cannot be applied on this host now, each named in `report`: objects
    /// whose name the operator already uses (conflicts), vifs that are the host's own links (refused), vifs the
    /// hypervisor has not made (missing; applied when they appear), and what depends on those.
    func applicable(_ desired: HostNetworkState, links: [ObservedLink], addresses: [ObservedAddress], report: inout ApplyReport) -> HostNetworkState {
        let byName = Dictionary(links.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        func taken(_ name: String) -> ObservedLink? {
            guard let link = byName[name], !ownership.links.contains(name) else { return nil }
            return link
        }
        var effective = desired
        var conflicted = Set<String>()
        effective.vlanDevices = desired.vlanDevices.filter { device in
            guard let link = taken(device.name) else { return true }
            conflicted.insert(device.name)
            report.failures.append(.init(.conflict, object: "vlan device \(device.name)",
                                         error: "\(device.name) exists and is not vnet's (\(link.kind ?? "device")\(link.vlanID.map { " id \($0)" } ?? "")); left as it is, so VLAN \(device.vlan) has no uplink here until the operator renames or removes it"))
            return false
        }
        effective.bridges = desired.bridges.compactMap { bridge in
            if let link = taken(bridge.name) {
                conflicted.insert(bridge.name)
                report.failures.append(.init(.conflict, object: "bridge \(bridge.name)",
                                             error: "\(bridge.name) exists and is not vnet's (\(link.kind ?? "device")); left as it is, and no instance is attached to it"))
                return nil
            }
            var kept = bridge
            kept.ports = bridge.ports.filter { !conflicted.contains($0) }
            return kept
        }
        effective.vifs = desired.vifs.filter { vif in
            let object = "vif \(vif.name)"
            if conflicted.contains(vif.bridge) {
                report.failures.append(.init(.conflict, object: object, instance: vif.instance, error: "its bridge \(vif.bridge) is the operator's"))
                return false
            }
            if vif.createTap {
                guard let link = taken(vif.name) else { return true }
                report.failures.append(.init(.conflict, object: object, instance: vif.instance,
                                             error: "\(vif.name) exists and is not vnet's (\(link.kind ?? "device")); left as it is"))
                return false
            }
            let link = byName[vif.name]
            if let reason = vifRefusal(vif.name, desired, link.map(hostLink)) {
                report.failures.append(.init(.refused, object: object, instance: vif.instance, error: "\(reason); never attached or let go of"))
                return false
            }
            if link == nil {
                report.failures.append(.init(.missing, object: object, instance: vif.instance,
                                             error: "not on this host: the hypervisor has not made it yet, or it is gone; attached when it appears"))
                return false
            }
            return true
        }
        // An address already on the host that vnet did not add is the operator's: used as it is, never removed.
        let presentAddresses = Set(addresses.map(OwnershipRecord.key))
        effective.addresses = desired.addresses.filter { address in
            if conflicted.contains(address.device) {
                report.failures.append(.init(.conflict, object: "address \(address.cidr) on \(address.device)", error: "its device is the operator's"))
                return false
            }
            let key = OwnershipRecord.key(address)
            if presentAddresses.contains(key), !ownership.addresses.contains(key) {
                report.notes.append("\(address.cidr) on \(address.device) was already there (the operator's): used as it is, never removed")
                return false
            }
            return true
        }
        if var server = effective.dhcpd {
            server.interfaces = server.interfaces.filter { !conflicted.contains($0) }
            if server.interfaces.isEmpty, !(desired.dhcpd?.interfaces.isEmpty ?? true) {
                report.failures.append(.init(.conflict, object: "dhcpd", error: "every interface it would serve on is the operator's; dhcpd left as it is"))
                effective.dhcpd = lastApplied?.dhcpd
            } else {
                effective.dhcpd = server
            }
        }
        return effective
    }

    /// Runs the link and address operations in one `ip -force -batch`, which carries on past a failed line and
    /// names it ("Command failed -:N"); each failed line becomes its object's failure. Ownership of what is to
    /// be made is recorded before, and given up for what could not be made or was deleted. Returns the lines run.
    func runBatch(_ planned: [KernelOperation], present: Set<String>, desired: HostNetworkState, oneByOne: Bool, report: inout ApplyReport) throws -> Int {
        // An operation on a link that will not be there is its object's failure before ip sees it: ip ends the
        // whole batch at once on "Device does not exist", -force or not.
        var exists = present
        var operations: [KernelOperation] = []
        var reported = Set<String>()
        for operation in planned {
            let needs: [String]
            switch operation {
            case .createVLAN(let name, let parent, _): needs = [parent]; exists.insert(name)
            case .createBridge(let name), .createTap(let name, _): needs = []; exists.insert(name)
            case .setUp(let name), .detach(let name): needs = [name]
            case .attach(let port, let bridge): needs = [port, bridge]
            case .deleteLink(let name): needs = [name]
            case .addAddress(let address), .removeAddress(let address): needs = [address.device]
            default: needs = []
            }
            if let absent = needs.first(where: { !exists.contains($0) }) {
                let (object, instance) = Self.subject(of: operation, in: desired)
                if reported.insert(object).inserted {
                    report.failures.append(.init(.failed, object: object, instance: instance, error: "\(operation.description): \(absent) does not exist"))
                }
                continue
            }
            if case .deleteLink(let name) = operation { exists.remove(name) }
            operations.append(operation)
        }
        let numbered: [(operation: Int, line: String)]
        do { numbered = try IPBatch.numberedLines(for: operations) } catch { throw Failure.unsupported("\(error)") }
        guard !numbered.isEmpty else { return 0 }
        let before = ownership
        for operation in operations {
            switch operation {
            case .createVLAN(let name, _, _), .createBridge(let name), .createTap(let name, _): ownership.links.insert(name)
            case .addAddress(let address): ownership.addresses.insert(OwnershipRecord.key(address))
            default: break
            }
        }
        saveOwnership()
        var failedLines: [Int: String] = [:]
        if oneByOne {
            for (number, entry) in numbered.enumerated() {
                do { _ = try runner.run(["ip", "-batch", "-"], input: Array((entry.line + "\n").utf8)) } catch {
                    failedLines[number + 1] = error.stderr.split(separator: "\n").filter { !$0.hasPrefix("Command failed") }.joined(separator: "; ")
                }
            }
        } else {
            do {
                _ = try runner.run(["ip", "-force", "-batch", "-"], input: Array((numbered.map(\.line).joined(separator: "\n") + "\n").utf8))
            } catch {
                failedLines = IPBatch.failedLines(error.stderr)
                // Nothing said which line: ip did not run, or stopped where it cannot say.
                if failedLines.isEmpty { throw BatchAborted(error: error) }
            }
        }
        var failedOperations = Set<Int>()
        for (line, message) in failedLines.sorted(by: { $0.key < $1.key }) where line >= 1 && line <= numbered.count {
            let index = numbered[line - 1].operation
            failedOperations.insert(index)
            let (object, instance) = Self.subject(of: operations[index], in: desired)
            guard reported.insert(object).inserted else { continue }
            report.failures.append(.init(.failed, object: object, instance: instance, error: "\(operations[index].description): \(message)"))
        }
        for (index, operation) in operations.enumerated() {
            let failed = failedOperations.contains(index)
            switch operation {
            case .createVLAN(let name, _, _), .createBridge(let name), .createTap(let name, _):
                if failed, !before.links.contains(name) { ownership.links.remove(name) }
            case .addAddress(let address):
                if failed, !before.addresses.contains(OwnershipRecord.key(address)) { ownership.addresses.remove(OwnershipRecord.key(address)) }
            case .deleteLink(let name) where !failed:
                if !operations[(index + 1)...].contains(where: { if case .createVLAN(name, _, _) = $0 { true } else if case .createTap(name, _) = $0 { true } else { false } }) {
                    ownership.links.remove(name)
                }
            case .removeAddress(let address) where !failed:
                ownership.addresses.remove(OwnershipRecord.key(address))
            default: break
            }
        }
        return numbered.count - failedOperations.count
    }

    /// The object an operation is about, as the report names it, and the instance it serves.
    static func subject(of operation: KernelOperation, in desired: HostNetworkState) -> (object: String, instance: InstanceID?) {
        let vifs = Dictionary(desired.vifs.map { ($0.name, $0.instance) }, uniquingKeysWith: { first, _ in first })
        func link(_ name: String) -> (String, InstanceID?) {
            if let instance = vifs[name] { return ("vif \(name)", instance) }
            if desired.bridges.contains(where: { $0.name == name }) { return ("bridge \(name)", nil) }
            if desired.vlanDevices.contains(where: { $0.name == name }) { return ("vlan device \(name)", nil) }
            return ("link \(name)", nil)
        }
        switch operation {
        case .requireLink(let name), .createVLAN(let name, _, _), .createBridge(let name), .createTap(let name, _), .setUp(let name), .deleteLink(let name):
            return link(name)
        case .attach(let port, let bridge):
            // A port's attach is the port's (a vif's, the VLAN device's), unless the port is not known.
            return vifs[port] != nil || desired.vlanDevices.contains(where: { $0.name == port }) ? link(port) : ("bridge \(bridge)", nil)
        case .detach(let port): return link(port)
        case .addAddress(let address), .removeAddress(let address): return ("address \(address.cidr) on \(address.device)", nil)
        case .configureDHCPD, .stopDHCPD: return ("dhcpd", nil)
        case .restoreIPTables, .clearIPTables: return ("iptables", nil)
        }
    }

    /// The router settings of a front end (`RouterSysctls`): read in one `sysctl`, written in one, only those that
    /// differ; one changed back by hand is drift.
    func applyRouterSettings(_ desired: HostNetworkState, steady: Bool, report: inout ApplyReport) {
        let settings = RouterSysctls.settings(for: desired)
        guard !settings.isEmpty else { return }
        var current: [String: String] = [:]
        let output: [UInt8]
        do { output = try runner.run(["sysctl"] + settings.map(\.key), input: nil) } catch { output = Array(error.stdout.utf8) }
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { current[parts[0]] = parts[1] }
        }
        let differing = settings.filter { current[$0.dotted] != $0.value }
        guard !differing.isEmpty else { return }
        do {
            _ = try runner.run(["sysctl", "-q", "-w"] + differing.map { "\($0.key)=\($0.value)" }, input: nil)
            report.operations += 1
            if steady, !lastFailedObjects.contains("sysctl") {
                report.drift += differing.map { "\($0.dotted) was \(current[$0.dotted] ?? "unreadable"); set \($0.value)" }
            }
        } catch {
            report.failures.append(.init(.failed, object: "sysctl", error: "\(error)"))
        }
    }

    /// `VifRules` on this host: its own VNET_INTERFACE and VNET_BRIDGE, and the desired state's required links
    /// (VNET_INTERFACE in MANAGED, VNET_BRIDGE in the other modes) and none of them may be a vif.
    func vifRefusal(_ name: String, _ desired: HostNetworkState, _ link: HostLink?) -> String? {
        let required = desired.requiredLinks.first
        if let reason = VifRules.refusal(name, interface: hostInterface ?? (desired.mode == .managed ? required : nil),
                                         bridge: hostBridge ?? (desired.mode == .managed ? nil : required), link: link) {
            return reason
        }
        return desired.requiredLinks.contains(name) ? "\(name) is a link this host's state requires (its VNET_INTERFACE or VNET_BRIDGE)" : nil
    }

    func saveOwnership() {
        guard ownership != savedOwnership else { return }
        guard let path = stateFile.map({ $0 + ".owned.json" }), let data = try? JSONEncoder().encode(ownership) else { return }
        if writeAtomically(data, to: path) { savedOwnership = ownership }
    }

    func hostLink(_ link: ObservedLink) -> HostLink {
        HostLink(name: link.name, kind: link.kind, master: link.master, isUp: link.isUp, vnetOwned: ownership.links.contains(link.name))
    }

    public func inventory() -> HostInventory {
        guard let (links, addresses) = try? observeHost() else { return HostInventory() }
        return HostInventory(links: links.map(hostLink).sorted(),
                             addresses: addresses.map { "\($0.address)/\($0.prefixLength) \($0.device)" }.sorted())
    }

    public var dhcpdState: String { dhcpd?.stateDescription ?? "absent" }

    public var iptablesRules: Int { firewallRecord.snapshot?.ruleCount ?? 0 }

    public var dhcpdRestarts: Int { dhcpd?.restarts ?? 0 }
    public var dhcpdHostChanges: Int { dhcpd?.hostChanges ?? 0 }

    public var daemonDown: Bool {
        guard let dhcpd, lastApplied?.dhcpd != nil else { return false }
        return dhcpd.runningPID == nil
    }

    // MARK: SYSTEM mode

    func startLearning(_ report: inout ApplyReport) {
        guard learner == nil, learnerFailure == nil else { return }
        do {
            learner = try AddressLearner(file: stateFile.map { $0 + ".learned.json" })
        } catch {
            learnerFailure = "\(error)"
            report.notes.append("\(error); instance addresses will not be reported")
        }
    }

    public func learnedAddresses() -> [LearnedAddress] {
        guard let learner, let vifs = lastApplied?.vifs else { return [] }
        learner.drain()
        return learner.learned(for: vifs)
    }

    // MARK: firewall

    /// What the agent last wrote to iptables, kept next to `stateFile` so that a restarted agent compares the
    /// live rules with it instead of rewriting them: the iptables-save view of vnet's rules, and the preload
    /// text last loaded.
    struct FirewallRecord: Codable, Equatable {
        var snapshot: FirewallSnapshot?
        var preload: String?
        /// The chains as last written (nil: not known, as after an upgrade or a removal): a change is written
        /// as the chains that differ from these.
        var written: [IPTablesRenderer.Chain]?
    }

    var firewallRecordPath: String? { stateFile.map { $0 + ".iptables.json" } }

    static func loadFirewallRecord(_ path: String?) -> FirewallRecord {
        guard let path, let data = FileManager.default.contents(atPath: path),
              let record = try? JSONDecoder().decode(FirewallRecord.self, from: data) else { return FirewallRecord() }
        return record
    }

    func saveFirewallRecord() {
        guard firewallRecordUnsaved, let path = firewallRecordPath, let data = try? JSONEncoder().encode(firewallRecord) else { return }
        if writeAtomically(data, to: path) { firewallRecordUnsaved = false }
    }

    /// The preload to load in this apply: when the host wants a firewall and the file exists with content not
    /// loaded yet (first time, or changed since), or vnet's chains are gone from the live tables (the host
    /// rebooted, or someone flushed them: the operator's rules went with them). Parsed and tested with
    /// `iptables-restore --test` here, so a bad file changes nothing at all.
    func pendingPreload(for desired: HostNetworkState) throws -> (IPTablesPreload, String)? {
        guard let wanted = desired.firewall, let path = preloadPath,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard text != firewallRecord.preload || vnetChainsAbsent() else { return nil }
        let preload: IPTablesPreload
        do { preload = try IPTablesPreload.parse(text, path: path) } catch { throw Failure.unsupported("iptables-preload \(error)") }
        do { try IPTablesApplier(runner: runner).check(preload, with: wanted) } catch { throw Failure.command(error) }
        return (preload, text)
    }

    /// Whether vnet's forward chain is missing from the live filter table (one `iptables -S CHAIN`).
    func vnetChainsAbsent() -> Bool {
        // Verified present, and not one rule changed since.
        if let verified = verifiedGeneration, rulesetGeneration.current() == verified { return false }
        return (try? runner.run(["iptables", "-w", "-t", "filter", "-S", ChainName.forward], input: nil)) == nil
    }

    /// Writes, checks or removes vnet's rules. Between changes the live rules are compared with what was last
    /// written (iptables-save's own spelling of it), so a rule deleted, added or edited by hand inside vnet's
    /// chains, a missing jump, or FORWARD's policy changed is drift: vnet's chains are rewritten and it is said.
    func applyFirewall(_ desired: HostNetworkState, steady: Bool, preload: (IPTablesPreload, String)?, report: inout ApplyReport) throws(CommandError) -> Int {
        let firewall = IPTablesApplier(runner: runner)
        guard let wanted = desired.firewall else {
            guard lastApplied?.firewall != nil || firewallRecord.snapshot != nil else { return 0 }
            try firewall.remove()
            firewallRecord.snapshot = nil
            verifiedGeneration = nil
            firewallRecord.written = nil
            return 1
        }
        if let (loaded, text) = preload {
            verifiedGeneration = nil
            try firewall.load(loaded, with: wanted)
            try firewall.apply(wanted)
            firewallRecord.preload = text
            firewallRecord.snapshot = try readFirewall(firewall)
            firewallRecord.written = IPTablesRenderer.chains(wanted)
            let rules = loaded.sections.reduce(0) { $0 + $1.rules.count }
            report.notes.append("loaded \(loaded.path): \(rules) rules in \(loaded.sections.map(\.table).joined(separator: ", "))"
                             + (loaded.ignoredVNetLines > 0 ? "; \(loaded.ignoredVNetLines) lines about vnet's own chains ignored" : ""))
            return 3
        }
        if !steady && wanted != lastApplied?.firewall || firewallRecord.snapshot == nil {
            if let written = firewallRecord.written, let snapshot = firewallRecord.snapshot {
                // A change: only the chains that differ are written, and only they are read back.
                firewallRecord.written = nil  // until this apply is through
                let before = rulesetGeneration.current()
                let untouchedSinceVerified = before != nil && before == verifiedGeneration
                verifiedGeneration = nil
                let chains = IPTablesRenderer.chains(wanted, reusing: lastApplied?.firewall.map { ($0, written) })
                let change = try firewall.apply(wanted, since: written, wanted: chains, recorded: snapshot)
                let touched = Set(change.written + change.deleted)
                let after = rulesetGeneration.current()
                firewallRecord.snapshot = snapshot.replacing(chains: touched, with: try firewall.snapshot(of: change.written))
                firewallRecord.written = chains
                // The rest of the snapshot still stands for the kernel only if nobody changed the ruleset since it
                // was verified: the generation moved by exactly this change's transactions, and not while the
                // changed chains were read back. Otherwise the next pass reads everything.
                if untouchedSinceVerified, let before, after == before &+ UInt32(change.transactions), rulesetGeneration.current() == after {
                    verifiedGeneration = after
                }
                return change.isEmpty ? 0 : 2
            }
            verifiedGeneration = nil
            try firewall.apply(wanted)
            firewallRecord.snapshot = try readFirewall(firewall)
            firewallRecord.written = IPTablesRenderer.chains(wanted)
            return 2
        }
        // A pass between changes: nothing in the ruleset changed since vnet's rules were last verified (the
        // kernel's generation is the same), so there is nothing to read.
        if let verified = verifiedGeneration, rulesetGeneration.current() == verified { return 0 }
        let live = try readFirewall(firewall)
        let differences = live.differences(from: firewallRecord.snapshot!)
        guard !differences.isEmpty else { return 0 }
        verifiedGeneration = nil
        try firewall.apply(wanted)
        firewallRecord.snapshot = try readFirewall(firewall)
        firewallRecord.written = IPTablesRenderer.chains(wanted)
        report.drift += differences.map { "iptables: \($0); rewrote vnet's chains" }
        return 2
    }


    /// vnet's part of the live tables, read whole; the generation it was read at becomes the verified one when
    /// the ruleset did not change while it was read (a change in between leaves it unknown: the next pass reads
    /// again).
    func readFirewall(_ firewall: IPTablesApplier) throws(CommandError) -> FirewallSnapshot {
        let before = rulesetGeneration.current()
        let snapshot = try firewall.snapshot()
        verifiedGeneration = before != nil && rulesetGeneration.current() == before ? before : nil
        return snapshot
    }

    /// The host's links and addresses: from the kernel by rtnetlink, in the namespace the commands run in;
    /// through `ip -json` when a test's model of a kernel answers the commands.
    func observeHost() throws -> ([ObservedLink], [ObservedAddress]) {
        if runner.kernel != .modelled {
            do { return try NetlinkObservation.observe(in: runner.kernel) } catch { throw Failure.observation("\(error)") }
        }
        do {
            let links = try LinkObservation.links(fromJSON: try runner.run(["ip", "-json", "-details", "link", "show"], input: nil))
            let addresses = try LinkObservation.addresses(fromJSON: try runner.run(["ip", "-json", "address", "show"], input: nil))
            return (links, addresses)
        } catch let error as CommandError {
            throw Failure.command(error)
        } catch {
            throw Failure.observation("\(error)")
        }
    }

    func remember(_ state: HostNetworkState, steady: Bool) {
        // `steady`: the state is the one already applied (and compared once, by the caller: at 80 000 rules a
        // comparison is a millisecond).
        if !steady { stateUnsaved = true }
        lastApplied = state
        guard stateUnsaved, let stateFile, let bytes: [UInt8] = try? state.wire.serializedBytes() else { return }
        if writeAtomically(Data(bytes), to: stateFile) { stateUnsaved = false }
    }

    /// The part of the host this agent owns, in the shape of a desired state, so the planner can diff: the links
    /// and addresses its record says it made, and the hypervisor vifs a known state names (never one that is a
    /// host's own link: those are refused). Nothing is taken for ours by its name alone.
    func ownedState(like desired: HostNetworkState, links: [ObservedLink], addresses: [ObservedAddress]) -> HostNetworkState {
        let known = [desired] + (lastApplied.map { [$0] } ?? [])
        let knownVifs = Dictionary(known.flatMap(\.vifs).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

        var state = HostNetworkState(host: desired.host, role: desired.role, mode: desired.mode)
        state.requiredLinks = desired.requiredLinks
        // The firewall and dhcpd are compared by their own appliers (the live rules against what was written;
        // dhcpd's config file and process), not by the link diff.
        state.firewall = lastApplied?.firewall
        state.dhcpd = lastApplied?.dhcpd
        for link in links where link.kind == "vlan" && ownership.links.contains(link.name) {
            guard let vid = link.vlanID, let parent = link.parent else { continue }
            state.vlanDevices.append(.init(name: link.name, parent: parent, vlan: vid))
        }
        let ownedVLANs = Set(state.vlanDevices.map(\.name))
        for link in links where link.kind == "bridge" && ownership.links.contains(link.name) {
            let ports = links.filter { $0.master == link.name && ownedVLANs.contains($0.name) }.map(\.name).sorted()
            state.bridges.append(.init(name: link.name, ports: ports))
        }
        for link in links {
            let known = knownVifs[link.name]
            let isTap = link.kind == "tun" && ownership.links.contains(link.name)
            if isTap {
                guard let instance = known?.instance ?? InstanceID("i-" + link.name.dropFirst(3)) else { continue }
                // In the desired state a vif's MAC is its guest's. A tap of ours carries the matching host-side MAC
                // (`tapHostSide`, never the guest's own: the bridge would take the guest's frames as its own), so it
                // is reported with its guest's MAC only when it does; any other MAC on it (the guest's own, as agents
                // before this rule made them) is reported as none, and the planner makes the tap again.
                let mac = known.map { link.mac == $0.mac.tapHostSide ? $0.mac : MACAddress(0) } ?? MACAddress(0)
                state.vifs.append(.init(name: link.name, bridge: link.master ?? "", mac: mac, instance: instance, createTap: true))
            } else if let known, !known.createTap, vifRefusal(link.name, desired, hostLink(link)) == nil {
                // A hypervisor's vif: ours only to attach, and to let go of when its instance leaves.
                state.vifs.append(.init(name: link.name, bridge: link.master ?? "", mac: link.mac ?? MACAddress(0), instance: known.instance, createTap: false))
            }
        }
        for address in addresses {
            let candidate = HostNetworkState.Address(device: address.device, address: address.address,
                                                     prefixLength: address.prefixLength, broadcast: address.broadcast)
            if ownership.addresses.contains(OwnershipRecord.key(candidate)) { state.addresses.append(candidate) }
        }
        state.vlanDevices.sort(); state.bridges.sort(); state.vifs.sort(); state.addresses.sort()
        return state
    }
}
