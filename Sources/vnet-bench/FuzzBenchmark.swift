import ArgumentParser
import Foundation
import VNetBus
import VNetCore
import VNetProto

/// `vnet-bench fuzz`: every parser that reads what others wrote, fed mutated inputs (seeded, reproducible):
/// eucalyptus.conf (parse and validate, both roles), bus envelopes (decode, header peek, host-state mapping),
/// DHCP replies, VLAN probe frames and iptables-preload files. A crash stops the run (the process dies, naming
/// the target and the seed in the last progress line); the slowest single input is reported, to catch
/// anything close to a hang. Mutations start from valid inputs (the example configs, real envelopes), so most
/// inputs get deep into the parsers instead of failing at the first byte.
struct FuzzBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fuzz", abstract: "Feed every input parser mutated inputs; report inputs run and time.")

    @Option(help: "Inputs per target.") var inputs = 1_000_000
    @Option(help: "Seed (the same seed gives the same inputs).") var seed: UInt64 = 1
    @Option(help: "Only this target: conf, envelope, dhcp, probe, preload.") var only: String?
    @Flag(help: "Print one JSON object.") var json = false

    struct Figure: Encodable { var target: String; var inputs: Int; var seconds: Double; var slowestMicroseconds: Double; var accepted: Int }

    func run() throws {
        var figures: [Figure] = []
        for target in ["conf", "envelope", "dhcp", "probe", "preload"] where only == nil || only == target {
            if !json { FileHandle.standardError.write(Data("fuzz: \(target), \(inputs) inputs, seed \(seed)\n".utf8)) }
            figures.append(run(target))
        }
        if json { try printJSON(figures); return }
        // A crash would have ended the process before this table: reaching it means none.
        var rows = [["TARGET", "INPUTS", "TIME", "SLOWEST INPUT", "ACCEPTED AS VALID"]]
        for figure in figures {
            rows.append([figure.target, String(figure.inputs), String(format: "%.1f s", figure.seconds),
                         String(format: "%.0f us", figure.slowestMicroseconds), String(figure.accepted)])
        }
        print(table(rows), terminator: "")
    }

    func run(_ target: String) -> Figure {
        var generator = SeededGenerator(seed: seed &+ UInt64(target.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        let corpus = Self.corpus(target)
        var accepted = 0
        var slowest = 0.0
        let codec = EnvelopeCodec(clusterID: "vnet")
        let start = monotonicSeconds()
        for index in 0..<inputs {
            let input = Self.mutate(corpus[index % corpus.count], &generator)
            let before = monotonicSeconds()
            switch target {
            case "conf":
                let text = String(decoding: input, as: UTF8.self)
                if ConfigValidator.validate(text: text, role: index % 2 == 0 ? .frontend : .node).isValid { accepted += 1 }
            case "envelope":
                _ = IntentFrame.peek(input, clusterID: "vnet")
                if case .success(let body) = codec.decode(input) {
                    accepted += 1
                    if case .nodeState(let state) = body { _ = try? HostNetworkState(wire: state.state) }
                }
            case "dhcp":
                if DHCPReply.parse(ipPacket: input) != nil { accepted += 1 }
            case "probe":
                if VLANProbe.parse(input, strippedVLAN: index % 3 == 0 ? Int(index % 4095) : nil) != nil { accepted += 1 }
            default:
                if (try? IPTablesPreload.parse(String(decoding: input, as: UTF8.self), path: "fuzz")) != nil { accepted += 1 }
            }
            slowest = max(slowest, monotonicSeconds() - before)
        }
        return Figure(target: target, inputs: inputs, seconds: monotonicSeconds() - start, slowestMicroseconds: slowest * 1e6, accepted: accepted)
    }

    /// Valid inputs to start from.
    static func corpus(_ target: String) -> [[UInt8]] {
        switch target {
        case "conf":
            return [benchmarkConfigText(["VNET_PUBLICIPS=\"203.0.113.10-203.0.113.19\"", "VNET_CLOUDIP=\"192.0.2.10\""]),
                    "VNET_MODE=\"STATIC\"\nVNET_INTERFACE=\"eth0\"\nVNET_DHCPDAEMON=\"/usr/sbin/dhcpd\"\nVNET_SUBNET=\"10.30.1.0\"\nVNET_NETMASK=\"255.255.255.0\"\nVNET_BROADCAST=\"10.30.1.255\"\nVNET_ROUTER=\"10.30.1.1\"\nVNET_DNS=\"192.0.2.53\"\nVNET_MACMAP=\"d0:0d:00:00:01:03=10.30.1.3\"\n",
                    "VNET_MODE=\"MANAGED-NOVLAN\"\nVNET_BRIDGE=\"br0\"\n", "VNET_MODE=\"SYSTEM\"\n# comment\nexport EUCALYPTUS=\"/\"\n"].map { Array($0.utf8) }
        case "envelope":
            let codec = EnvelopeCodec(clusterID: "vnet")
            var state = HostNetworkState(host: "n1", role: .node, mode: .managed)
            state.requiredLinks = ["eth0"]
            state.vlanDevices = [.init(name: "eth0.10", parent: "eth0", vlan: 10)]
            state.bridges = [.init(name: "eucabr10", ports: ["eth0.10"])]
            state.vifs = [.init(name: "vn-00000001", bridge: "eucabr10", mac: MACAddress(0xd00d_0000_0001), instance: InstanceID("i-00000001")!, createTap: true)]
            let bytes = (try? state.wire.serializedBytes()) ?? []
            var register = Vnet_V1_Register()
            register.nodeID = "n1"
            var run = Vnet_V1_RunInstance()
            run.instanceID = "i-00000001"
            var request = Vnet_V1_ControlRequest()
            request.op = .runInstance(run)
            return [IntentFrame.nodeState(clusterID: "vnet", header: .init(nodeID: "n1", epoch: 1, revision: 2, previousRevision: 1, clusterRevision: 2), stateBytes: bytes),
                    codec.encode(.register(register)), codec.encode(.controlRequest(request))]
        case "dhcp":
            var bootp = [UInt8](repeating: 0, count: 240)
            bootp[0] = 2; bootp[1] = 1; bootp[2] = 6
            bootp.replaceSubrange(236..<240, with: [99, 130, 83, 99])
            bootp += [53, 1, 5, 51, 4, 0, 0, 14, 16, 54, 4, 10, 0, 0, 1, 255]
            let udp: [UInt8] = [0, 67, 0, 68, UInt8((8 + bootp.count) >> 8), UInt8((8 + bootp.count) & 0xff), 0, 0]
            let total = 20 + udp.count + bootp.count
            return [[0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 255, 255, 255, 255] + udp + bootp]
        case "probe":
            return [0, 10].map { VLANProbe(destination: MACAddress(2), source: MACAddress(3), vlan: $0, kind: .probe, nonce: 7, sequence: 1, sentNanoseconds: 5, sender: "h1").frame }
        default:
            return [Array("*filter\n:INPUT ACCEPT [0:0]\n:ops - [0:0]\n-A INPUT -j ops\n-A FORWARD -j VNET-FORWARD\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n".utf8)]
        }
    }

    /// One to four mutations: flip, set, insert or delete bytes, splice in a token, or truncate.
    static func mutate(_ original: [UInt8], _ generator: inout SeededGenerator) -> [UInt8] {
        var bytes = original
        let tokens: [[UInt8]] = ["\"", "=", "\n", "\\", "$(", "`", "'", " ", "-", "/", ".", "*", ":", "COMMIT", "VNET_", "255", "4095", "0x", "\u{0}", "é"].map { Array($0.utf8) }
        for _ in 0..<(1 + Int(generator.next() % 4)) {
            let position = bytes.isEmpty ? 0 : Int(generator.next() % UInt64(bytes.count))
            switch generator.next() % 6 {
            case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1 << (generator.next() % 8))
            case 1 where !bytes.isEmpty: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
            case 2: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
            case 3 where !bytes.isEmpty: bytes.remove(at: position)
            case 4: bytes.insert(contentsOf: tokens[Int(generator.next() % UInt64(tokens.count))], at: position)
            default: if !bytes.isEmpty { bytes.removeLast(Int(generator.next() % UInt64(bytes.count))) }
            }
        }
        return bytes
    }
}

