import ArgumentParser
import Foundation
import VNetBus
import VNetCore
import VNetLinux
import VNetProto
import VNetSystem

/// `vnet-bench verify-vlan` (root): `verify-vlan` end to end as an operator runs it, the request to the
/// coordinator and its answer, with the real coordinator and one real agent per host (the bring-up
/// benchmark's namespaces: a switch namespace, the front end and N-1 nodes), H hosts x V VIDs, median of a
/// few runs. Measured in the same run against the case that cannot end early: one node's switch port drops
/// one of the VIDs (nftables' bridge family), so that VID never completes and the verification lasts its
/// probe window, which is what every verification lasted before it could end early.
/// `--mtu`: every link at MTU 9000 and `verify-vlan --mtu`, so each host searches every peer and VID (a clean
/// fleet: its 9000-byte frames pass at once); the case measured beside it is n1's switch port at 1500, where
/// every direction towards n1 is searched down to the byte.
struct VerifyVLANBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify-vlan", abstract: "verify-vlan end to end across real agents in namespaces (root).")

    @Option(help: "Hosts taking part, the front end included, comma-separated sizes.") var hosts = "16"
    @Option(help: "VIDs (10, 11, ...).") var vlans = 8
    @Option(name: .customLong("probe-time"), help: "The probe window, seconds.") var probeTime = 3.0
    @Option(help: "Verifications per size (the median is shown).") var runs = 3
    @Flag(help: "verify-vlan --mtu on links of MTU 9000, against n1's switch port at 1500.") var mtu = false
    @Flag(name: .customLong("keep-logs"), help: "Keep the daemons' logs (the directory is printed).") var keepLogs = false
    @Flag(help: "Print one JSON object.") var json = false

    struct Figure: Encodable {
        var hosts: Int, vlans: Int, probeTimeSeconds: Double
        var cleanSeconds: [Double], medianCleanSeconds: Double
        var dirtySeconds: Double
        var pairResults: Int
    }

    func validate() throws {
        guard getuid() == 0 else { throw ValidationError("verify-vlan needs root (network namespaces)") }
        guard (1...64).contains(vlans), (1...20).contains(runs), (1...30).contains(probeTime) else { throw ValidationError("--vlans 1-64, --runs 1-20, --probe-time 1-30") }
    }

    func run() throws {
        let sizes = hosts.split(separator: ",").compactMap { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ (3...64).contains($0) }) else { throw ValidationError("--hosts: sizes of 3-64, like 16,64") }
        var figures: [Figure] = []
        for size in sizes {
            let lab = try BringUpLab(nodes: size - 1, instancesPerNode: 0)
            defer { lab.tearDown(keepLogs: keepLogs) }
            if keepLogs { progress("logs in \(lab.directory)") }
            progress("\(size) hosts: namespaces and daemons")
            try lab.build()
            if mtu {
                // Jumbo frames on every link, the control plane's route held to 1500: the short port made below
                // would otherwise swallow the agents' larger TCP segments to the coordinator (a black hole, the
                // very trouble --mtu finds), and n1 would drop out of the verification.
                let hosts = ["fe"] + (1..<size).map { "n\($0)" }
                try Namespaces.batch(lab.ns("sw"), hosts.map { "link set p-\($0) mtu 9000" })
                for host in hosts {
                    let device = host == "fe" ? "eth0" : "br0"
                    try Namespaces.batch(lab.ns(host), ["link set eth0 mtu 9000"] + (host == "fe" ? [] : ["link set br0 mtu 9000"])
                                         + ["route replace 10.99.0.0/24 dev \(device) mtu 1500"])
                }
            }
            try lab.startDaemons()
            var request = Vnet_V1_VerifyVlan()
            request.vlans = (0..<UInt32(vlans)).map { 10 + $0 }
            request.frontend = true
            request.count = 2
            request.timeoutMs = UInt32(probeTime * 1000)
            request.mtu = mtu
            func verify() throws -> (seconds: Double, verification: Vnet_V1_VlanVerification) {
                let start = monotonicSeconds()
                let reply = try lab.call(.verifyVlan(request), timeout: probeTime + 15)
                return (monotonicSeconds() - start, reply.verification)
            }
            var clean: [Double] = []
            var pairs = 0
            for index in 0..<runs {
                progress("\(size) hosts x \(vlans) VIDs: verification \(index + 1) of \(runs)")
                let (seconds, verification) = try verify()
                let shortPaths = verification.mtuPaths.filter { $0.failed != 0 }
                guard !mtu || (verification.mtuPaths.count == size * (size - 1) * (vlans + 1) && shortPaths.isEmpty) else {
                    throw BusError("a clean --mtu verification did not pass: \(verification.mtuPaths.count) directions searched, \(shortPaths.count) short")
                }
                guard verification.hosts.count == size, verification.pairs.allSatisfy({ $0.status == "ok" }) else {
                    let bad = verification.pairs.filter { $0.status != "ok" }
                    throw BusError("a clean verification did not pass: \(bad.count) pair results not OK, like "
                                   + bad.prefix(5).map { "\($0.a) <-> \($0.b) VID \($0.vlan) \($0.status)" }.joined(separator: ", ")
                                   + " (a window too short for this many hosts on this machine? --probe-time)")
                }
                clean.append(seconds)
                pairs = verification.pairs.count
            }
            let dirty: Double
            if mtu {
                // n1's switch port at 1500: every direction towards n1 is searched down to the byte.
                try Namespaces.batch(lab.ns("sw"), ["link set p-n1 mtu 1500"])
                progress("\(size) hosts: n1's port at MTU 1500")
                let verification: Vnet_V1_VlanVerification
                (dirty, verification) = try verify()
                let towards = verification.mtuPaths.filter { $0.to == "n1" }
                guard towards.count == (size - 1) * (vlans + 1), towards.allSatisfy({ (1500...1504).contains($0.passed) && $0.failed == $0.passed + 1 }) else {
                    throw BusError("n1's 1500 port was not found on every path towards it: \(towards.filter { $0.failed != $0.passed + 1 }.count) of \(towards.count) not searched to the byte")
                }
            } else {
                // The last VID dropped on n1's switch port: that VID cannot complete, so the window runs out.
                let dropped = 10 + vlans - 1
                for command in [["nft", "add", "table", "bridge", "vnetbench"],
                                ["nft", "add chain bridge vnetbench port { type filter hook forward priority 0 ; }"],
                                ["nft", "add rule bridge vnetbench port iifname p-n1 vlan id \(dropped) drop"]] {
                    _ = try ProcessRunner(prefix: ["ip", "netns", "exec", lab.ns("sw")]).run(command, input: nil)
                }
                progress("\(size) hosts: one port dropping VID \(dropped)")
                let verification: Vnet_V1_VlanVerification
                (dirty, verification) = try verify()
                guard verification.pairs.contains(where: { $0.status != "ok" && $0.vlan == UInt32(dropped) }) else {
                    throw BusError("the dropped VID \(dropped) was not found")
                }
            }
            figures.append(Figure(hosts: size, vlans: vlans, probeTimeSeconds: probeTime, cleanSeconds: clean, medianCleanSeconds: median(clean),
                                  dirtySeconds: dirty, pairResults: pairs))
        }
        if json { try printJSON(figures); return }
        print(mtu ? "VERIFY-VLAN --MTU END TO END  CLEAN (median)   N1'S PORT AT 1500 (window)     PAIR RESULTS   TARGET"
                  : "VERIFY-VLAN END TO END        CLEAN (median)   ONE VID DROPPED (the window)   PAIR RESULTS   TARGET")
        for figure in figures {
            let target = mtu ? (figure.hosts <= 16 ? 5.0 : 10.0) : (figure.hosts <= 16 ? 1.0 : 10.0)
            print(String(format: "%3d hosts x %2d VIDs            %6.2f s         %6.2f s (%.1f s window)        %6d         < %.0f s %@",
                         figure.hosts, figure.vlans, figure.medianCleanSeconds, figure.dirtySeconds, figure.probeTimeSeconds, figure.pairResults,
                         target, figure.medianCleanSeconds < target ? "MEETS" : "MISSES"))
        }
    }

    func progress(_ line: String) {
        if !json { FileHandle.standardError.write(Data("verify-vlan: \(line)\n".utf8)) }
    }
}
