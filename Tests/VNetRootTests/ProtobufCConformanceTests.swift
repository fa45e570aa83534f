import Foundation
import Testing
import VNetCore
import VNetProto

/// A C peer built with protobuf-c reads what Swift writes and writes what Swift reads: the schema keeps to
/// what protobuf-c 1.4 accepts (no proto3 `optional`), and both encoders agree byte for byte.
@Suite("protobuf-c conformance", .enabled(if: ProtobufCLane.enabled, ProtobufCLane.reason), .serialized)
struct ProtobufCConformanceTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let program = #"""
    #include <stdio.h>
    #include <stdlib.h>
    #include <inttypes.h>
    #include "vnet.pb-c.h"

    static uint8_t *slurp(const char *path, size_t *length) {
        FILE *file = fopen(path, "rb");
        if (!file) return NULL;
        uint8_t *buffer = malloc(1 << 20);
        *length = fread(buffer, 1, 1 << 20, file);
        fclose(file);
        return buffer;
    }

    int main(int argc, char **argv) {
        if (argc != 3) return 64;
        size_t length;
        uint8_t *bytes = slurp(argv[1], &length);
        if (!bytes) return 65;
        Vnet__V1__Envelope *envelope = vnet__v1__envelope__unpack(NULL, length, bytes);
        if (!envelope) { fprintf(stderr, "unpack failed\n"); return 1; }
        if (envelope->body_case != VNET__V1__ENVELOPE__BODY_INTENT) { fprintf(stderr, "not an Intent\n"); return 2; }
        Vnet__V1__Intent *state = envelope->intent;
        Vnet__V1__HostNetworkState *host = state->state;
        printf("version=%u cluster=%s node=%s revision=%" PRIu64 " previous=%" PRIu64 "\n",
               envelope->protocol_version, envelope->cluster_id, state->node_id, state->revision, state->previous_revision);
        printf("host=%s role=%d mode=%d links=%zu\n", host->host, host->role, host->mode, host->n_required_links);
        for (size_t i = 0; i < host->n_vlan_devices; i++)
            printf("vlan %s parent=%s id=%u\n", host->vlan_devices[i]->name, host->vlan_devices[i]->parent, host->vlan_devices[i]->vlan);
        for (size_t i = 0; i < host->n_vifs; i++)
            printf("vif %s bridge=%s mac=%012" PRIx64 " instance=%s tap=%d\n", host->vifs[i]->name, host->vifs[i]->bridge,
                   host->vifs[i]->mac, host->vifs[i]->instance_id, host->vifs[i]->create_tap);
        printf("firewall=%s dhcpd=%s\n", host->firewall ? "yes" : "no", host->dhcpd ? "yes" : "no");
        vnet__v1__envelope__free_unpacked(envelope, NULL);

        Vnet__V1__Envelope out = VNET__V1__ENVELOPE__INIT;
        out.protocol_version = 1;
        out.cluster_id = "cluster-from-c";
        Vnet__V1__AgentHeartbeat heartbeat = VNET__V1__AGENT_HEARTBEAT__INIT;
        heartbeat.node_id = "node-c";
        heartbeat.applied_revision = 42;
        heartbeat.applying_revision = 9;
        heartbeat.sequence = 7;
        out.body_case = VNET__V1__ENVELOPE__BODY_AGENT_HEARTBEAT;
        out.agent_heartbeat = &heartbeat;
        size_t size = vnet__v1__envelope__get_packed_size(&out);
        uint8_t *packed = malloc(size);
        vnet__v1__envelope__pack(&out, packed);
        FILE *file = fopen(argv[2], "wb");
        fwrite(packed, 1, size, file);
        fclose(file);
        return 0;
    }
    """#

    func run(_ path: String, _ arguments: [String], in directory: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func laneIsComplete() {
        #expect(ProtobufCLane.missing.isEmpty, "missing: \(ProtobufCLane.missing.joined(separator: ", "))")
    }

    @Test func swiftAndCReadEachOther() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-protoc-c-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let generated = try run("/usr/bin/protoc-c", ["--c_out=\(work)", "--proto_path=\(Self.repository.path)/proto", "\(Self.repository.path)/proto/vnet.proto"], in: work)
        #expect(generated.0 == 0, "protoc-c refused the schema: \(generated.1)")
        try Self.program.write(toFile: "\(work)/peer.c", atomically: true, encoding: .utf8)
        let built = try run("/usr/bin/gcc", ["-Wall", "-o", "peer", "peer.c", "vnet.pb-c.c", "-lprotobuf-c"], in: work)
        #expect(built.0 == 0, "gcc: \(built.1)")
        guard built.0 == 0 else { return }

        // Swift -> C: a node's desired state with VLAN devices, a bridge and vifs.
        var state = HostNetworkState(host: "node7", role: .node, mode: .managed)
        state.requiredLinks = ["eth0"]
        state.vlanDevices = [.init(name: "eth0.10", parent: "eth0", vlan: 10), .init(name: "eth0.4094", parent: "eth0", vlan: 4094)]
        state.bridges = [.init(name: "eucabr10", ports: ["eth0.10"])]
        state.vifs = [.init(name: "vn-3f1a0b2c", bridge: "eucabr10", mac: MACAddress("d0:0d:3f:1a:0b:2c")!, instance: InstanceID("i-3f1a0b2c")!, createTap: true)]
        var message = Vnet_V1_Intent()
        message.nodeID = "node7"
        message.revision = 12_345_678_901
        message.previousRevision = 12_345_678_900
        message.state = state.wire
        var envelope = Vnet_V1_Envelope()
        envelope.protocolVersion = 1
        envelope.clusterID = "cluster-from-swift"
        envelope.intent = message
        try Data(try envelope.serializedBytes() as [UInt8]).write(to: URL(fileURLWithPath: "\(work)/from-swift.bin"))
        let peer = try run("\(work)/peer", ["from-swift.bin", "from-c.bin"], in: work)
        #expect(peer.0 == 0, "\(peer.1)")
        #expect(peer.1 == """
        version=1 cluster=cluster-from-swift node=node7 revision=12345678901 previous=12345678900
        host=node7 role=2 mode=3 links=1
        vlan eth0.10 parent=eth0 id=10
        vlan eth0.4094 parent=eth0 id=4094
        vif vn-3f1a0b2c bridge=eucabr10 mac=d00d3f1a0b2c instance=i-3f1a0b2c tap=1
        firewall=no dhcpd=no

        """)

        // C -> Swift, and the two encoders agree byte for byte.
        let fromC = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(work)/from-c.bin")))
        let decoded = try Vnet_V1_Envelope(serializedBytes: fromC)
        #expect(decoded.clusterID == "cluster-from-c")
        guard case .agentHeartbeat(let heartbeat)? = decoded.body else { Issue.record("not a heartbeat"); return }
        #expect(heartbeat.nodeID == "node-c" && heartbeat.appliedRevision == 42 && heartbeat.applyingRevision == 9 && heartbeat.sequence == 7)
        #expect(try decoded.serializedBytes() as [UInt8] == fromC)
    }
}

enum ProtobufCLane {
    static let missing: [String] = {
        var missing: [String] = []
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc-c") { missing.append("protoc-c (protobuf-c-compiler)") }
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/gcc") { missing.append("gcc") }
        if !FileManager.default.fileExists(atPath: "/usr/include/protobuf-c/protobuf-c.h") { missing.append("libprotobuf-c-dev") }
        return missing
    }()
    static let enabled = missing.isEmpty || ProcessInfo.processInfo.environment["CI"] != nil
    static let reason: Comment = "needs protobuf-c-compiler, libprotobuf-c-dev and gcc (Tests/run-all.sh installs them)"
}
