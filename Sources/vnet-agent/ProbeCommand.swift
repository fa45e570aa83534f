import ArgumentParser
import Foundation
import VNetBus
import VNetSystem
import VNetCore
import VNetLinux

/// `vnet-agent probe`: this host's side of a VLAN check, by hand (start it on each host at about the same time):
/// tagged probes to each peer's MAC on each VID, answers to theirs, an untagged control round. Creates nothing
/// on the host; needs CAP_NET_RAW.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "probe", abstract: "Probe VLANs to peers with raw tagged frames (changes nothing).")

    @Option(help: "The interface that carries the VLANs (VNET_INTERFACE).") var interface: String
    @Option(help: "This host's name, as its peers know it.") var name: String
    @Option(name: .customLong("peer"), help: "A peer as NAME=MAC (repeat for each).") var peers: [String] = []
    @Option(help: "VIDs to check, like 10,20-30.") var vlans: String
    @Option(help: "Probes per peer and VID.") var count = 3
    @Option(help: "Seconds to run (keep answering while the peers probe).") var duration = 2.0
    @Option(name: .customLong("listen-first"), help: "Seconds to only listen and answer before probing, so that peers started a little later are ready.")
    var listenFirst = 0.5
    @Option(name: .customLong("probe-at"), help: "Start probing at this CLOCK_MONOTONIC time in ns (several probers on one machine, for benchmarks).")
    var probeAt: UInt64?
    @Flag(help: "Also find the largest frame that reaches each peer on each VID (padded probes; every peer must run with --mtu).")
    var mtu = false
    @Option(name: .customLong("expect-mtu"), help: "With --mtu: a size to try early, beside 1500 and the interface's MTU.") var expectMTU: Int?
    @Flag(help: "Print the observations as JSON.") var json = false

    func run() throws {
        let list: [Int]
        do { list = try VLANList.parse(vlans) } catch { throw ValidationError("--vlans: \(error.message)") }
        let parsed = try peers.map { text -> VLANProbeSession.Peer in
            let parts = text.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, let mac = MACAddress(parts[1]) else { throw ValidationError("--peer '\(text)' is not NAME=MAC") }
            return .init(name: String(parts[0]), mac: mac)
        }
        guard (1...100).contains(count), duration > 0, duration <= 60 else { throw ValidationError("--count 1-100, --duration up to 60 s") }
        let session: VLANProbeSession
        do { session = try VLANProbeSession(interface: interface, name: name) } catch {
            FileHandle.standardError.write(Data("vnet-agent probe: \(error)\n".utf8))
            throw ExitCode(3)
        }
        guard (0...30).contains(listenFirst) else { throw ValidationError("--listen-first 0-30 s") }
        if let expectMTU, !mtu || !VNetConfig.mtuRange.contains(expectMTU) { throw ValidationError("--expect-mtu goes with --mtu, and is 68-65535") }
        let observations = session.run(peers: parsed, vlans: list, count: count, duration: duration,
                                       probeAt: probeAt ?? monotonicNanoseconds() + UInt64(listenFirst * 1e9), mtu: mtu, expectedMTU: expectMTU)
        if json {
            try printJSON(ProbeReport(host: name, mac: session.mac.description, interfaceMTU: session.interfaceMTU,
                                      completedAtMonotonicNanoseconds: session.completedAt, observations: observations))
        } else {
            print("this host: \(name) \(session.mac) on \(interface), MTU \(session.interfaceMTU)")
            for observation in observations {
                let vid = observation.vlan == 0 ? "untagged" : "vlan \(observation.vlan)"
                let found = observation.mtu.map { "  largest frame that arrives \($0.passed)" + ($0.failed.map { ", not \($0)" } ?? " (this host's MTU)") } ?? ""
                print("\(observation.peer)  \(vid)  sent \(observation.sent)  replies \(observation.replies)  their probes heard \(observation.received)\(found)")
            }
        }
    }
}

/// `vnet-agent probe --json`: what this host saw, and when (CLOCK_MONOTONIC, shared by every namespace of a
/// machine) every peer had answered on every VID.
struct ProbeReport: Codable {
    var host: String
    var mac: String
    var interfaceMTU: Int?
    var completedAtMonotonicNanoseconds: UInt64?
    var observations: [VLANVerification.Observation]
}
