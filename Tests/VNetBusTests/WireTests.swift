import Foundation
import Testing
import VNetBus
@testable import VNetCore
import VNetProto

@Suite("wire: codec and mapping")
struct WireTests {
    let codec = EnvelopeCodec(clusterID: "c1", maxFrameBytes: 1 << 16)

    @Test func codecRefusesWhatIsNotOurs() {
        var heartbeat = Vnet_V1_AgentHeartbeat()
        heartbeat.nodeID = "n1"
        let good = codec.encode(.agentHeartbeat(heartbeat))
        guard case .success(.agentHeartbeat(let decoded)) = codec.decode(good) else { Issue.record("round trip failed"); return }
        #expect(decoded.nodeID == "n1")
        #expect(EnvelopeCodec(clusterID: "other").decode(good) == .failure(.wrongCluster))
        var envelope = Vnet_V1_Envelope()
        envelope.protocolVersion = 2
        envelope.clusterID = "c1"
        envelope.agentHeartbeat = heartbeat
        #expect(codec.decode(try! envelope.serializedBytes()) == .failure(.wrongVersion))
        envelope.protocolVersion = 1
        envelope.body = nil
        #expect(codec.decode(try! envelope.serializedBytes()) == .failure(.emptyBody))
        #expect(codec.decode(Array(repeating: 0xff, count: 40)) == .failure(.malformed))
        #expect(codec.decode(Array(repeating: 0, count: (1 << 16) + 1)) == .failure(.oversized))
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = codec.decode(bytes)
        }
    }

    func plannedStates() throws -> [HostNetworkState] {
        let text = """
        VNET_MODE="MANAGED"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="10.20.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="192.0.2.53 192.0.2.54"
        VNET_ADDRSPERNET="64"
        VNET_PUBLICIPS="203.0.113.10-203.0.113.12"
        VNET_CLOUDIP="192.0.2.10"
        """
        let config = try #require(ConfigValidator.validate(text: text, role: .frontend).config)
        var allocator = try Allocator(config: config, state: ClusterState(frontend: "fe"))
        try allocator.addNode(.init(name: "n1", interface: "eth0", bridge: "br0"))
        let web = GroupID(user: "admin", name: "web"), db = GroupID(user: "admin", name: "db")
        try allocator.createGroup(web, rules: [SecurityRule(.tcp(22...22), from: .cidr(IPv4Network("0.0.0.0/0")!)),
                                               SecurityRule(.icmp(type: 8, code: 0), from: .cidr(IPv4Network("198.51.100.0/24")!))])
        try allocator.createGroup(db, rules: [SecurityRule(.udp(53...60), from: .group(web)), SecurityRule(.icmp(type: nil, code: nil), from: .group(web))])
        try allocator.runInstance(InstanceID(number: 1), on: "n1", group: web)
        try allocator.runInstance(InstanceID(number: 2), on: "n1", group: db, hypervisorVif: "vnet0")
        try allocator.associate(try allocator.allocatePublicIP(), with: InstanceID(number: 1))
        return try HostPlanner(config: config).desiredStates(for: allocator.state).values.sorted { $0.host < $1.host }
    }

    @Test func hostStatesSurviveTheWire() throws {
        for state in try plannedStates() {
            let bytes: [UInt8] = try state.wire.serializedBytes()
            let back = try HostNetworkState(wire: try Vnet_V1_HostNetworkState(serializedBytes: bytes))
            #expect(back == state, "\(state.host)")
            #expect(back.wire.digest == state.wire.digest)
        }
    }

    @Test func wireStatesThatWouldHurtAKernelAreRefused() throws {
        let frontend = try #require(try plannedStates().first { $0.role == .frontend })
        var wire = frontend.wire
        wire.vlanDevices[0].vlan = 4095
        #expect(throws: WireError.self) { try HostNetworkState(wire: wire) }
        wire = frontend.wire
        wire.vlanDevices[0].name = "eth0.2; reboot"
        #expect(throws: WireError.self) { try HostNetworkState(wire: wire) }
        wire = frontend.wire
        wire.addresses[0].prefixLength = 33
        #expect(throws: WireError.self) { try HostNetworkState(wire: wire) }
        wire = frontend.wire
        wire.firewall.groups[0].chain = String(repeating: "x", count: 29)
        #expect(throws: WireError.self) { try HostNetworkState(wire: wire) }
        wire = frontend.wire
        wire.firewall.groups[0].rules[0].fromPort = 0
        #expect(throws: WireError.self) { try HostNetworkState(wire: wire) }
        wire = frontend.wire
        wire.role = .unspecified
        #expect(throws: WireError.self) { try HostNetworkState(wire: wire) }
        wire = frontend.wire
        wire.host = "../etc"
        #expect(throws: WireError.self) { try HostNetworkState(wire: wire) }
    }
}

@Suite("intent frames")
struct IntentFrameTests {
    /// The hand-framed envelope is byte for byte what SwiftProtobuf writes, for random headers and states
    /// (zeros, empty strings and large numbers included), and `peek` reads back what was framed.
    @Test func framingMatchesSwiftProtobufAndPeekReadsItBack() throws {
        var random = SystemRandomNumberGenerator()
        let states: [Vnet_V1_HostNetworkState] = [Vnet_V1_HostNetworkState(), {
            var s = HostNetworkState(host: "n1", role: .node, mode: .managed)
            s.requiredLinks = ["eth0"]
            s.vlanDevices = [.init(name: "eth0.7", parent: "eth0", vlan: 7)]
            return s.wire
        }()]
        for _ in 0..<500 {
            let pick = { () -> UInt64 in [0, 1, 127, 128, 300, UInt64.max, UInt64.random(in: 0...UInt64.max, using: &random)].randomElement(using: &random)! }
            let header = IntentFrame.Header(nodeID: ["", "n", "node-\(pick())"].randomElement(using: &random)!, epoch: pick(), revision: pick(),
                                            previousRevision: pick(), clusterRevision: pick())
            let state = states.randomElement(using: &random)!
            let cluster = ["", "vnet", "a-cluster-id-with-more-than-127-characters-" + String(repeating: "x", count: 100)].randomElement(using: &random)!
            var message = Vnet_V1_Intent()
            message.nodeID = header.nodeID; message.epoch = header.epoch; message.revision = header.revision
            message.previousRevision = header.previousRevision; message.clusterRevision = header.clusterRevision
            message.state = state
            let expected = EnvelopeCodec(clusterID: cluster).encode(.intent(message))
            let framed = IntentFrame.envelope(clusterID: cluster, header: header, stateBytes: try state.serializedBytes())
            #expect(framed == expected)
            #expect(IntentFrame.peek(framed, clusterID: cluster) == header)
            #expect(IntentFrame.peek(framed, clusterID: cluster + "x") == nil)
        }
    }

    @Test func peekRefusesWhatIsNotAnIntent() {
        var heartbeat = Vnet_V1_AgentHeartbeat()
        heartbeat.nodeID = "n1"
        #expect(IntentFrame.peek(EnvelopeCodec(clusterID: "c").encode(.agentHeartbeat(heartbeat)), clusterID: "c") == nil)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            let bytes = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = IntentFrame.peek(bytes, clusterID: "c")  // must not crash or hang
        }
        #expect(IntentFrame.peek([0x6A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], clusterID: "") == nil, "a length past the end")
    }
}
