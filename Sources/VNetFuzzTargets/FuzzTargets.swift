import Foundation
import VNetBus
import VNetCore
import VNetEC2
import VNetProto

/// Every parser that reads what others wrote, as fuzz targets: eucalyptus.conf (parse and validate, both
/// roles), bus envelopes (decode, header peek, host-state mapping), DHCP replies, VLAN probe frames,
/// iptables-preload files, dhcpd's OMAPI answers and its lease file, DHCP server replies as whole frames (the
/// rogue-DHCP check), LLDP frames (the switch port), the EC2 API's requests (parameters, actions, SigV4 headers). Used by `vnet-bench fuzz` (seeded mutation, reproducible) and by the libFuzzer
/// harness in Fuzz/ (coverage-guided), so both exercise exactly the same code.
public enum FuzzTargets {
    public static let names = ["conf", "envelope", "dhcp", "probe", "preload", "omapi", "leases", "dhcp-frame", "lldp", "ec2"]

    /// Feeds one input to `target`; true when the parser accepted it as valid. `variant` picks between the
    /// ways a target can be read (a config's role, a probe frame with its tag stripped by the kernel).
    @discardableResult
    public static func feed(_ target: String, _ input: [UInt8], variant: Int = 0) -> Bool {
        switch target {
        case "conf":
            return ConfigValidator.validate(text: String(decoding: input, as: UTF8.self), role: variant % 2 == 0 ? .frontend : .node).isValid
        case "envelope":
            _ = IntentFrame.peek(input, clusterID: "vnet")
            guard case .success(let body) = EnvelopeCodec(clusterID: "vnet").decode(input) else { return false }
            if case .intent(let state) = body { _ = try? HostNetworkState(wire: state.state) }
            return true
        case "dhcp":
            return DHCPReply.parse(ipPacket: input) != nil
        case "probe":
            return VLANProbe.parse(input, strippedVLAN: variant % 3 == 0 ? variant % 4095 : nil) != nil
        case "omapi":
            guard let (message, _) = try? OMAPIMessage.decode(input[...]) else { return false }
            _ = message.isSigned(by: [1, 2, 3])
            _ = OMAPISession.host(in: message)
            return true
        case "lldp":
            guard let neighbor = LLDPNeighbor.parse(input) else { return false }
            _ = neighbor.label
            // What the agent sends must read back the same at the coordinator.
            return LLDPNeighbor(wire: neighbor.wire(interface: "eth0", ageMilliseconds: 1)) == neighbor
        case "dhcp-frame":
            return RogueDHCP.Sighting.parse(frame: input, strippedVLAN: variant % 3 == 0 ? variant % 4095 : nil) != nil
        case "ec2":
            // Even variants: the bytes as a form body, carried out against a coordinator that accepts
            // everything (every action's parameter reading and XML). Odd: as an Authorization header.
            if variant % 2 == 0 {
                var parameters = QueryParameters()
                guard let pairs = try? QueryParameters.parse(String(decoding: input, as: UTF8.self), plusIsSpace: true),
                      (try? parameters.add(pairs)) != nil else { return false }
                return EC2Service().handle(parameters, caller: fuzzKey, requestID: "r", channel: AcceptingChannel()).errorCode == nil
            }
            let request = SigV4Verifier.Request(method: "POST", path: "/", query: "",
                                                headers: [("Host", "h"), ("X-Amz-Date", "20150830T123600Z"), ("Authorization", String(decoding: input, as: UTF8.self))],
                                                body: Array("Action=DescribeAddresses".utf8))
            return (try? SigV4Verifier(keys: AccessKeys([fuzzKey]), region: "us-east-1").verify(request, now: 1_440_938_160)) != nil
        case "leases":
            let kept = DHCPDLeaseFile.removingHostDeclarations(String(decoding: input, as: UTF8.self))
            return DHCPDLeaseFile.removingHostDeclarations(kept) == kept
        default:
            return (try? IPTablesPreload.parse(String(decoding: input, as: UTF8.self), path: "fuzz")) != nil
        }
    }

    /// Valid inputs to start from.
    public static func corpus(_ target: String) -> [[UInt8]] {
        switch target {
        case "conf":
            return ["VNET_MODE=\"MANAGED\"\nVNET_INTERFACE=\"eth0\"\nVNET_DHCPDAEMON=\"/usr/sbin/dhcpd\"\nVNET_SUBNET=\"10.0.0.0\"\nVNET_NETMASK=\"255.0.0.0\"\nVNET_DNS=\"192.0.2.53\"\nVNET_ADDRSPERNET=\"64\"\nVNET_PUBLICIPS=\"203.0.113.10-203.0.113.19\"\nVNET_CLOUDIP=\"192.0.2.10\"\n",
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
            return [IntentFrame.envelope(clusterID: "vnet", header: .init(nodeID: "n1", epoch: 1, revision: 2, previousRevision: 1, clusterRevision: 2), stateBytes: bytes),
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
                + [VLANProbe(destination: MACAddress(2), source: MACAddress(3), vlan: 20, kind: .probe, nonce: 7, sequence: 1, sentNanoseconds: 5, sender: "h1", size: 200).frame]
        case "lldp":
            return [LLDPNeighbor(chassisID: "52:54:00:12:34:56", portID: "Eth1/7", ttl: 120, systemName: "sw1", portDescription: "to n3",
                                 portVLAN: 1, vlans: [20: "v200"], maxFrameSize: 1518).frame(source: MACAddress(0x5254_0012_3457))]
        case "dhcp-frame":
            // A server's offer, tagged, from the "dhcp" corpus's packet (its options: an ACK with a server id).
            return corpus("dhcp").map { [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0, 20, 0x08, 0x00] + $0 }
        case "omapi":
            var answer = OMAPIMessage(opcode: .update, handle: 9, values: [("result", OMAPIMessage.bigEndian(0))],
                                      object: [("name", Array("node-10.0.0.5".utf8)), ("hardware-address", [0xd0, 0x0d, 0, 0, 1, 5]), ("ip-address", [10, 0, 0, 5])])
            answer.authenticator = 1
            return [answer.encoded(signingWith: [1, 2, 3]), answer.encoded(signingWith: nil)]
        case "ec2":
            return [Array("Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupName=web&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8&IpPermissions.1.Groups.1.GroupName=db".utf8),
                    Array("Action=DescribeSecurityGroups&GroupName.1=web&Filter.1.Name=group-name&Filter.1.Value.1=w*".utf8),
                    Array("Action=AssociateAddress&PublicIp=203.0.113.10&InstanceId=i-0000a001&DryRun=false".utf8),
                    Array("AWS4-HMAC-SHA256 Credential=AKIAVNETFUZZ00000001/20150830/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".utf8)]
        case "leases":
            return [Array("authoring-byte-order little-endian;\nhost node-10.0.0.5 {\n  dynamic;\n  deleted;\n}\nlease 10.0.0.9 {\n  uid \"\\001}\";\n}\n# host x {\n".utf8)]
        default:
            return [Array("*filter\n:INPUT ACCEPT [0:0]\n:ops - [0:0]\n-A INPUT -j ops\n-A FORWARD -j VNET-FORWARD\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n".utf8)]
        }
    }

    /// One to four mutations: flip, set, insert or delete bytes, splice in a token, or truncate.
    public static func mutate(_ original: [UInt8], _ generator: inout SeededGenerator) -> [UInt8] {
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

private let fuzzKey = AccessKeys.Key(id: "AKIAVNETFUZZ00000001", secret: "fuzzsecretfuzzsecret0000", user: "fuzz", admin: false)

/// A coordinator that accepts every request and describes a little of everything: the gateway's whole path
/// after the coordinator's answer is fuzzed too.
private struct AcceptingChannel: ControlChannel {
    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws(EC2Error) -> Vnet_V1_ControlReply {
        var reply = Vnet_V1_ControlReply()
        reply.ok = true
        var group = Vnet_V1_GroupInfo()
        group.user = "fuzz"; group.group = "web"
        var rule = Vnet_V1_RuleChange()
        rule.traffic = SecurityRule.Traffic.icmp(type: 8, code: nil).wire
        rule.sourceGroup = "fuzz/db"
        group.rules = [rule]
        reply.groups = [group]
        var address = Vnet_V1_AddressInfo()
        address.address = 0xCB00_710A; address.owner = "fuzz"; address.instanceID = "i-0000a001"
        reply.addresses = [address]
        var instance = Vnet_V1_InstanceInfo()
        instance.instanceID = "i-0000a001"; instance.group = "fuzz/web"; instance.address = 0x0A14_0202
        reply.instances = [instance]
        return reply
    }
}
