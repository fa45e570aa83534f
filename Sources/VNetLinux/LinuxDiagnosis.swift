import Foundation
import VNetHost
import VNetCore

/// The Linux backend's side of `vnetctl diagnose`: the original document's troubleshooting commands, run as
/// argument lists, their outputs kept as files of the bundle; dhcpd's configuration, leases and state; and
/// the findings of comparing what is there (`HostObservation`) with the desired state (`HostFindings`).
extension LinuxBackend {
    /// The largest file kept whole; a longer one (a lease file, a big iptables-save) keeps its end.
    static let diagnosticFileLimit = 512 << 10

    public func diagnose(desired: HostNetworkState?) -> HostDiagnosis {
        var diagnosis = HostDiagnosis()
        func keep(_ name: String, _ bytes: [UInt8]) {
            let limit = Self.diagnosticFileLimit
            diagnosis.files.append((name, bytes.count <= limit ? bytes : Array("[first \(bytes.count - limit) bytes left out]\n".utf8) + bytes.suffix(limit)))
        }
        func output(_ arguments: [String]) -> [UInt8]? { try? runner.run(arguments, input: nil) }
        let commands: [(String, [String])] = [
            ("ip-link.txt", ["ip", "-details", "link", "show"]),
            ("ip-address.txt", ["ip", "address", "show"]),
            ("ip-route.txt", ["ip", "route", "show", "table", "all"]),
            ("ip-neighbour.txt", ["ip", "neighbour", "show"]),
            ("bridge-link.txt", ["bridge", "link", "show"]),
            ("iptables-save.txt", ["iptables-save"]),
            ("sysctl.txt", ["sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter"]),
        ]
        var outputs: [String: [UInt8]] = [:]
        for (name, arguments) in commands {
            do {
                let bytes = try runner.run(arguments, input: nil)
                outputs[name] = bytes
                keep(name, bytes)
            } catch {
                keep(name, Array("\(arguments.joined(separator: " ")) failed: \(error)\n".utf8))
            }
        }
        // dhcpd's files where this host runs one (or ran one: a config file is there).
        if let dhcpd, desired?.dhcpd != nil || FileManager.default.fileExists(atPath: dhcpd.confPath) {
            keep("dhcpd-state.txt", Array("\(dhcpd.stateDescription)\n".utf8))
            for (name, path) in [("dhcpd.conf", dhcpd.confPath), ("dhcpd.leases", dhcpd.leasePath), ("dhcpd.interfaces", dhcpd.interfacesPath)] {
                var bytes = FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? Array("(no \(path))\n".utf8)
                // The bundle leaves the host: the OMAPI key in dhcpd.conf does not go with it.
                if name == "dhcpd.conf" { bytes = Array(DHCPDConfRenderer.redactingSecrets(String(decoding: bytes, as: UTF8.self)).utf8) }
                keep(name, bytes)
            }
        }
        guard let desired else {
            diagnosis.findings = ["the agent holds no desired state yet (it has not heard from the coordinator since it started)"]
            return diagnosis
        }
        var observed = HostObservation()
        if let links = try? LinkObservation.links(fromJSON: output(["ip", "-json", "-details", "link", "show"]) ?? []) {
            for link in links { observed.links[link.name] = .init(isUp: link.isUp, master: link.master) }
        }
        if let addresses = try? LinkObservation.addresses(fromJSON: output(["ip", "-json", "address", "show"]) ?? []) {
            observed.addresses = Set(addresses.map { "\($0.device) \($0.address)/\($0.prefixLength)" })
        }
        if desired.dhcpd != nil, let dhcpd { observed.dhcpdRunning = dhcpd.runningPID != nil }
        if let save = outputs["iptables-save.txt"] { observed.iptablesChains = HostFindings.chains(inIPTablesSave: String(decoding: save, as: UTF8.self)) }
        if let forwarding = output(["sysctl", "-n", "net.ipv4.ip_forward"]) {
            observed.ipForwarding = String(decoding: forwarding, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "1"
        }
        diagnosis.findings = HostFindings.findings(desired: desired, observed: observed)
        return diagnosis
    }
}
