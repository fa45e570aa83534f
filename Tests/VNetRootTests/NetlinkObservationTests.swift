import Foundation
import Testing
import VNetCore
import VNetLinux

/// The backend reads links and addresses by rtnetlink; what it reads must be what `ip -json` says of the same
/// namespace, field by field, for every kind of link a host of vnet's has (a physical-like veth, the operator's
/// bridge, vnet's taps and bridges, a veth whose peer lives in another namespace, a link that is down, addresses
/// with and without a broadcast, several on one device).
@Suite("rtnetlink observation against ip -json", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct NetlinkObservationTests {
    @Test func netlinkSeesWhatIpJSONSees() throws {
        let namespace = try ScratchNamespace(), other = try ScratchNamespace()
        let runner = ProcessRunner(prefix: ["ip", "netns", "exec", namespace.name])
        for command in ["link add eth0 type veth peer name peer0", "link add br0 type bridge", "link set eth0 master br0",
                        "link set eth0 up", "link set peer0 up", "link set br0 up",
                        "tuntap add vn-00000001 mode tap", "link set vn-00000001 master br0", "link set vn-00000001 address d0:0d:00:00:00:01",
                        "link add eucabr10 type bridge", "tuntap add vn-00000002 mode tap", "link set vn-00000002 master eucabr10", "link set eucabr10 up",
                        "link add moved type veth peer name away", "link set away netns \(other.name)",
                        "address add 192.0.2.1/24 broadcast 192.0.2.255 dev br0", "address add 10.1.0.1/26 dev br0",
                        "address add 198.51.100.7/32 dev eth0", "address add 10.2.0.1/24 dev eucabr10"] {
            _ = try runner.run(["ip"] + command.split(separator: " ").map(String.init), input: nil)
        }
        let (links, addresses) = try NetlinkObservation.observe(in: .named(namespace.name))
        let expectedLinks = try LinkObservation.links(fromJSON: try runner.run(["ip", "-json", "-details", "link", "show"], input: nil))
        let expectedAddresses = try LinkObservation.addresses(fromJSON: try runner.run(["ip", "-json", "address", "show"], input: nil))
        #expect(links == expectedLinks, "\(links)\n\(expectedLinks)")
        #expect(addresses == expectedAddresses, "\(addresses)\n\(expectedAddresses)")
        // What the comparison covers, so it cannot pass on two empty lists.
        let byName = Dictionary(uniqueKeysWithValues: links.map { ($0.name, $0) })
        #expect(byName["vn-00000001"]?.kind == "tun" && byName["vn-00000001"]?.master == "br0" && byName["vn-00000001"]?.mac == MACAddress("d0:0d:00:00:00:01"))
        #expect(byName["eth0"]?.parent == "peer0" && byName["eth0"]?.isUp == true && byName["moved"]?.parent == nil && byName["moved"]?.isUp == false)
        #expect(byName["eucabr10"]?.kind == "bridge" && byName["vn-00000002"]?.master == "eucabr10")
        #expect(addresses.count == 4 && addresses.contains { $0.device == "br0" && $0.address == IPv4Address("192.0.2.1") && $0.broadcast == IPv4Address("192.0.2.255") })

        // A namespace that does not exist is an error naming it, not an empty host.
        let absent = "vnt-none-\(UInt32.random(in: 0...UInt32.max))"
        #expect(throws: NetlinkObservation.Failure.self) { try NetlinkObservation.observe(in: .named(absent)) }
    }
}
