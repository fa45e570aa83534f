import Foundation
import VNetBus
import SwiftProtobuf
import VNetAgent
import VNetCore
import VNetProto

/// The agent's Linux backend for links and addresses: observe with `ip -json`, diff against the desired state
/// (`KernelPlanner`), apply the difference in one `ip -batch` run.
///
/// Ownership: it only ever changes what this project made. Bridges named `eucabr*`, taps named `vn-*`, and the
/// VLAN devices, vifs, bridges and addresses its last applied state listed (or the desired state names).
/// The operator's interfaces (VNET_INTERFACE, VNET_BRIDGE and their ports) and addresses are never touched.
/// That last applied state is kept in `stateFile`, so ownership survives an agent restart.
///
/// The front end's firewall goes through `IPTablesApplier` (iptables-restore --noflush, own chains only); the
/// live rules of vnet's chains, their jumps and FORWARD's policy are compared on every apply with what was last
/// written, so anything changed there by hand is drift and is put back. The operator's iptables-preload is
/// honoured as Eucalyptus did (see `IPTablesPreload`).
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

    let runner: CommandRunner
    let stateFile: String?
    let dhcpd: DHCPDManager?
    public private(set) var lastApplied: HostNetworkState?
    /// What the last apply found changed by hand and put back, in words.
    public private(set) var lastDrift: [String] = []
    /// What the last apply did that an operator should hear about (the preload loaded).
    public private(set) var lastNotes: [String] = []
    /// Eucalyptus' iptables-preload: loaded (atomically with vnet's chains) when first seen and when changed.
    let preloadPath: String?
    var firewallRecord: FirewallRecord
    /// SYSTEM mode on a node: learns instance addresses from DHCP acknowledgements (opened on first need).
    var learner: AddressLearner?
    var learnerFailure: String?

    public init(runner: CommandRunner = ProcessRunner(), stateFile: String? = nil, dhcpd: DHCPDManager? = nil, preloadPath: String? = nil) {
        self.runner = runner
        self.stateFile = stateFile
        self.dhcpd = dhcpd
        self.preloadPath = preloadPath
        firewallRecord = Self.loadFirewallRecord(stateFile.map { $0 + ".iptables.json" })
        if let stateFile, let data = FileManager.default.contents(atPath: stateFile),
           let wire = try? Vnet_V1_HostState(serializedBytes: [UInt8](data)) {
            lastApplied = try? HostNetworkState(wire: wire)
        }
    }

    public func apply(_ desired: HostNetworkState, revision: UInt64) throws -> Int {
        if desired.dhcpd != nil, dhcpd == nil {
            throw Failure.unsupported("this agent was started without dhcpd settings, and this host's state needs dhcpd")
        }
        lastNotes = []
        // The operator's iptables-preload is read and checked before anything changes.
        let preload = try pendingPreload(for: desired)
        let (links, addresses) = try observeHost()
        let present = Set(links.map(\.name))
        let missing = desired.requiredLinks.filter { !present.contains($0) }
        guard missing.isEmpty else { throw Failure.missingLinks(missing) }
        let observed = ownedState(like: desired, links: links, addresses: addresses)
        var operations = KernelPlanner.operations(from: observed, to: desired)
        // A link of ours that someone set down is set up again.
        let ours = Set(desired.vlanDevices.map(\.name) + desired.bridges.map(\.name) + desired.vifs.filter(\.createTap).map(\.name))
        let created = Set(operations.compactMap { if case .setUp(let name) = $0 { name } else { nil } })
        for link in links where ours.contains(link.name) && !link.isUp && !created.contains(link.name) {
            operations.append(.setUp(link.name))
        }
        var drift = lastApplied == desired ? operations.filter { if case .requireLink = $0 { false } else { true } }.map(\.description) : []
        let lines: [String]
        do { lines = try IPBatch.lines(for: operations) } catch { throw Failure.unsupported("\(error)") }
        if !lines.isEmpty {
            do { _ = try runner.run(["ip", "-batch", "-"], input: Array((lines.joined(separator: "\n") + "\n").utf8)) } catch {
                throw Failure.command(error)
            }
        }
        // A front end in the managed modes routes between the groups' networks and to the outside: forwarding
        // must be on. Written only when it is not (the CNI plugins' rule), and reported if it was turned off.
        var forwardingOperations = 0
        if desired.role == .frontend, desired.mode.carvesNetworks {
            do {
                let current = String(decoding: try runner.run(["sysctl", "-n", "net.ipv4.ip_forward"], input: nil), as: UTF8.self)
                if current.trimmingCharacters(in: .whitespacesAndNewlines) != "1" {
                    _ = try runner.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], input: nil)
                    forwardingOperations = 1
                    if lastApplied == desired { drift.append("net.ipv4.ip_forward was off; turned it on") }
                }
            } catch {
                throw Failure.command(error)
            }
        }
        // The firewall, after the links and addresses it refers to exist.
        var firewallOperations = 0
        do {
            firewallOperations = try applyFirewall(desired, preload: preload, drift: &drift)
        } catch {
            throw Failure.command(error)
        }
        // dhcpd, once the addresses it serves on exist.
        var dhcpdOperations = 0
        if let dhcpd {
            do {
                if let wanted = desired.dhcpd {
                    let wasRunning = dhcpd.runningPID != nil
                    if try dhcpd.apply(wanted) {
                        dhcpdOperations = 1
                        if !wasRunning, lastApplied?.dhcpd == wanted { drift.append("dhcpd was not running; started it again") }
                    }
                } else if dhcpd.runningPID != nil {
                    dhcpd.stop()
                    dhcpdOperations = 1
                }
            } catch let error as CommandError {
                throw Failure.command(error)
            } catch {
                throw Failure.observation("dhcpd: \(error)")
            }
        }
        lastDrift = drift
        remember(desired)
        saveFirewallRecord()
        if desired.mode == .system, desired.role == .node { startLearning() }
        learner?.keepOnly(Set(desired.vifs.map(\.mac)))
        return lines.count + forwardingOperations + firewallOperations + dhcpdOperations
    }

    public var dhcpdState: String { dhcpd?.stateDescription ?? "absent" }

    public var iptablesRules: Int { firewallRecord.snapshot?.ruleCount ?? 0 }

    public var dhcpdRestarts: Int { dhcpd?.restarts ?? 0 }

    public var daemonDown: Bool {
        guard let dhcpd, lastApplied?.dhcpd != nil else { return false }
        return dhcpd.runningPID == nil
    }

    // MARK: SYSTEM mode

    func startLearning() {
        guard learner == nil, learnerFailure == nil else { return }
        do {
            learner = try AddressLearner(file: stateFile.map { $0 + ".learned.json" })
        } catch {
            learnerFailure = "\(error)"
            lastNotes.append("\(error); instance addresses will not be reported")
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
    }

    var firewallRecordPath: String? { stateFile.map { $0 + ".iptables.json" } }

    static func loadFirewallRecord(_ path: String?) -> FirewallRecord {
        guard let path, let data = FileManager.default.contents(atPath: path),
              let record = try? JSONDecoder().decode(FirewallRecord.self, from: data) else { return FirewallRecord() }
        return record
    }

    func saveFirewallRecord() {
        guard let path = firewallRecordPath, let data = try? JSONEncoder().encode(firewallRecord) else { return }
        writeAtomically(data, to: path)
    }

    /// The preload to load in this apply: when the host wants a firewall and the file exists with content not
    /// loaded yet (first time, or changed since). Parsed and tested with `iptables-restore --test` here, so a
    /// bad file changes nothing at all.
    func pendingPreload(for desired: HostNetworkState) throws -> (IPTablesPreload, String)? {
        guard let wanted = desired.firewall, let path = preloadPath,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard text != firewallRecord.preload else { return nil }
        let preload: IPTablesPreload
        do { preload = try IPTablesPreload.parse(text, path: path) } catch { throw Failure.unsupported("iptables-preload \(error)") }
        do { try IPTablesApplier(runner: runner).check(preload, with: wanted) } catch { throw Failure.command(error) }
        return (preload, text)
    }

    /// Writes, checks or removes vnet's rules. Between changes the live rules are compared with what was last
    /// written (iptables-save's own spelling of it), so a rule deleted, added or edited by hand inside vnet's
    /// chains, a missing jump, or FORWARD's policy changed is drift: vnet's chains are rewritten and it is said.
    func applyFirewall(_ desired: HostNetworkState, preload: (IPTablesPreload, String)?, drift: inout [String]) throws(CommandError) -> Int {
        let firewall = IPTablesApplier(runner: runner)
        guard let wanted = desired.firewall else {
            guard lastApplied?.firewall != nil || firewallRecord.snapshot != nil else { return 0 }
            try firewall.remove()
            firewallRecord.snapshot = nil
            return 1
        }
        if let (loaded, text) = preload {
            try firewall.load(loaded, with: wanted)
            try firewall.apply(wanted)
            firewallRecord.preload = text
            firewallRecord.snapshot = try firewall.snapshot()
            let rules = loaded.sections.reduce(0) { $0 + $1.rules.count }
            lastNotes.append("loaded \(loaded.path): \(rules) rules in \(loaded.sections.map(\.table).joined(separator: ", "))"
                             + (loaded.ignoredVNetLines > 0 ? "; \(loaded.ignoredVNetLines) lines about vnet's own chains ignored" : ""))
            return 3
        }
        if wanted != lastApplied?.firewall || firewallRecord.snapshot == nil {
            try firewall.apply(wanted)
            firewallRecord.snapshot = try firewall.snapshot()
            return 2
        }
        let live = try firewall.snapshot()
        let differences = live.differences(from: firewallRecord.snapshot!)
        guard !differences.isEmpty else { return 0 }
        try firewall.apply(wanted)
        firewallRecord.snapshot = try firewall.snapshot()
        drift += differences.map { "iptables: \($0); rewrote vnet's chains" }
        return 2
    }

    public func observe() -> HostNetworkState? {
        guard let reference = lastApplied, let (links, addresses) = try? observeHost() else { return nil }
        return ownedState(like: reference, links: links, addresses: addresses)
    }

    func observeHost() throws -> ([ObservedLink], [ObservedAddress]) {
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

    func remember(_ state: HostNetworkState) {
        lastApplied = state
        guard let stateFile, let bytes: [UInt8] = try? state.wire.serializedBytes() else { return }
        writeAtomically(Data(bytes), to: stateFile)
    }

    /// The part of the host this project owns, in the shape of a desired state, so the planner can diff.
    func ownedState(like desired: HostNetworkState, links: [ObservedLink], addresses: [ObservedAddress]) -> HostNetworkState {
        let known = [desired] + (lastApplied.map { [$0] } ?? [])
        let knownVifs = Dictionary(known.flatMap(\.vifs).map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let knownBridges = Set(known.flatMap(\.bridges).map(\.name))
        let knownVLANs = Set(known.flatMap(\.vlanDevices).map(\.name))
        let knownAddresses = Set(known.flatMap(\.addresses))
        let byName = Dictionary(links.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })

        var state = HostNetworkState(host: desired.host, role: desired.role, mode: desired.mode)
        state.requiredLinks = desired.requiredLinks
        // The firewall and dhcpd are compared by their own appliers (the live rules against what was written;
        // dhcpd's config file and process), not by the link diff.
        state.firewall = lastApplied?.firewall
        state.dhcpd = lastApplied?.dhcpd
        for link in links where link.kind == "vlan" {
            // Only VLAN devices this agent made or is asked to make: a name of the `<parent>.<vid>` shape is no
            // proof (a hypervisor's storage VLAN, or the devices `verify-vlan --method kernel` holds for a few
            // seconds, look the same), and what is claimed here is deleted when not desired.
            guard let vid = link.vlanID, let parent = link.parent, knownVLANs.contains(link.name) else { continue }
            state.vlanDevices.append(.init(name: link.name, parent: parent, vlan: vid))
        }
        let ownedVLANs = Set(state.vlanDevices.map(\.name))
        for link in links where link.kind == "bridge" && (link.name.hasPrefix("eucabr") || knownBridges.contains(link.name)) {
            let ports = links.filter { $0.master == link.name && ownedVLANs.contains($0.name) }.map(\.name).sorted()
            state.bridges.append(.init(name: link.name, ports: ports))
        }
        for link in links where link.name.hasPrefix("vn-") || knownVifs[link.name] != nil {
            let known = knownVifs[link.name]
            guard let instance = known?.instance ?? InstanceID("i-" + link.name.dropFirst(3)) else { continue }
            // In the desired state a vif's MAC is its guest's. A tap of ours carries the matching host-side MAC
            // (`tapHostSide`, never the guest's own: the bridge would take the guest's frames as its own), so it
            // is reported with its guest's MAC only when it does; any other MAC on it (the guest's own, as agents
            // before this rule made them) is reported as none, and the planner makes the tap again.
            let isTap = link.kind == "tun"
            var mac = link.mac ?? MACAddress(0)
            if isTap, let known { mac = link.mac == known.mac.tapHostSide ? known.mac : MACAddress(0) }
            state.vifs.append(.init(name: link.name, bridge: link.master ?? "", mac: mac, instance: instance, createTap: isTap))
        }
        let ownedDevices = ownedVLANs.union(state.bridges.map(\.name))
        for address in addresses {
            let candidate = HostNetworkState.Address(device: address.device, address: address.address,
                                                     prefixLength: address.prefixLength, broadcast: address.broadcast)
            if ownedDevices.contains(address.device) || knownAddresses.contains(candidate)
                || knownAddresses.contains(where: { $0.device == candidate.device && $0.address == candidate.address && $0.prefixLength == candidate.prefixLength }) {
                state.addresses.append(candidate)
            }
        }
        _ = byName
        state.vlanDevices.sort(); state.bridges.sort(); state.vifs.sort(); state.addresses.sort()
        return state
    }
}
