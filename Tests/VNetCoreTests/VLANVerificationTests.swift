import Testing
@testable import VNetCore

@Suite("VLAN verification: frames, VID lists, judgement")
struct VLANVerificationTests {
    let a = MACAddress("02:00:00:00:00:0a")!, b = MACAddress("02:00:00:00:00:0b")!

    @Test func aProbeSurvivesTheWireTaggedInlineOrStripped() throws {
        let probe = VLANProbe(destination: b, source: a, vlan: 42, kind: .probe, nonce: 0x0102_0304_0506_0708, sequence: 9,
                              sentNanoseconds: 123_456_789, sender: "node-1")
        let frame = probe.frame
        #expect(frame.count == 60 && Array(frame[12..<16]) == [0x81, 0x00, 0x00, 42] && Array(frame[16..<18]) == [0x88, 0xb5])
        #expect(VLANProbe.parse(frame, strippedVLAN: nil) == probe, "tag inline, as some NICs deliver it")
        var stripped = frame
        stripped.removeSubrange(12..<16)
        #expect(VLANProbe.parse(stripped, strippedVLAN: 42) == probe, "tag stripped by the kernel, reported in aux data")
        #expect(VLANProbe.parse(stripped, strippedVLAN: nil) == nil, "arrived untagged: not what was sent")
        #expect(VLANProbe.parse(stripped, strippedVLAN: 43) == nil, "retagged on the way")
        let reply = probe.reply(from: b, name: "node-2")
        #expect(reply.destination == a && reply.vlan == 42 && reply.nonce == probe.nonce && reply.kind == .reply)
        let control = VLANProbe(destination: b, source: a, vlan: 0, kind: .probe, nonce: 1, sequence: 1, sentNanoseconds: 1, sender: "x")
        #expect(VLANProbe.parse(control.frame, strippedVLAN: nil) == control)
        for length in 0..<frame.count { _ = VLANProbe.parse(Array(frame.prefix(length)), strippedVLAN: nil) }
    }

    @Test func vidListsParseOrSayWhy() throws {
        #expect(try VLANList.parse("10,20-22,10") == [10, 20, 21, 22])
        for (text, message) in [("1", "VIDs are 2-4094"), ("4095", "VIDs are 2-4094"), ("20-10", "is not a VID"), ("x", "is not a VID"), ("", "is not a VID")] {
            #expect(throws: ClusterError.self) { try VLANList.parse(text) }
            do { _ = try VLANList.parse(text) } catch { #expect(error.message.contains(message), "\(text): \(error.message)") }
        }
    }

    /// Observations where every pair passes on every VID except those `drops(host, peer, vlan)` names (both
    /// directions, untagged control included when asked).
    static func observations(_ hosts: [String], vlans: [Int], drops: (String, String, Int) -> Bool) -> [VLANVerification.Observation] {
        var out: [VLANVerification.Observation] = []
        for host in hosts {
            for peer in hosts where peer != host {
                for vlan in [0] + vlans {
                    let bad = drops(host, peer, vlan) || drops(peer, host, vlan)
                    out.append(.init(host: host, peer: peer, vlan: vlan, sent: 3, replies: bad ? 0 : 3, received: bad ? 0 : 3))
                }
            }
        }
        return out
    }

    static func conclusions(_ hosts: [String], vlans: [Int], unreachable: Set<String> = [], drops: (String, String, Int) -> Bool) -> [String] {
        let result = VLANVerification.judge(hosts: hosts, vlans: vlans, observations: observations(hosts, vlans: vlans, drops: drops), unreachable: unreachable)
        return VLANVerification.conclusions(hosts: hosts, vlans: vlans, pairs: result.pairs, culprits: result.culprits, unreachable: unreachable)
    }

    @Test func theConclusionsSayWhatTheMatrixShowsAndWhatItCannot() {
        let four = ["fe", "n1", "n2", "n3"]
        // One host's side: named, with its link shown up by the control.
        #expect(Self.conclusions(four, vlans: [10, 20]) { a, _, v in a == "n3" && v == 10 } == [
            "VID 10: n3 fails with every other host while they pass among themselves: n3's side drops it, its switch port not carrying VID 10 or its NIC filtering it; untagged frames pass to and from n3, so its link is up"])
        // Two hosts: either side.
        #expect(Self.conclusions(["n1", "n3"], vlans: [10]) { _, _, v in v == 10 } == [
            "VID 10 fails between n1 and n3 (FAILED): with two hosts either side may drop it; a third host tells which (the front end takes part unless --no-frontend)"])
        #expect(Self.conclusions(["n1", "n3"], vlans: [10]) { _, _, _ in true }.first?.contains("untagged either: a link problem") == true)
        // Carried nowhere.
        #expect(Self.conclusions(four, vlans: [20]) { _, _, v in v == 20 } == [
            "VID 20 fails between every pair: it is not carried between any of these hosts (not allowed on the trunks, or every port drops it); no single host is to blame"])
        // Two hosts each failing with everyone.
        #expect(Self.conclusions(four + ["n4"], vlans: [10]) { a, _, v in (a == "n2" || a == "n3") && v == 10 } == [
            "VID 10: n2, n3 each fail with every other host: look at each one's switch port"])
        // One pair failing between hosts that pass with the others.
        #expect(Self.conclusions(four, vlans: [10]) { a, b, v in a == "n1" && b == "n2" && v == 10 } == [
            "VID 10: n1 <-> n2 fail though each of these hosts passes with others: the path between them (a trunk between switches?) may not carry it"])
        // A host nothing reaches: its link, not tagging; and no VID is blamed on it (its pairs are not judged).
        #expect(Self.conclusions(four, vlans: [10]) { a, _, _ in a == "n2" } == ["n2: nothing passes to or from it, untagged either: its link or cabling, not VLAN tagging"])
        // Clean, or the failing host did not take part: nothing to conclude.
        #expect(Self.conclusions(four, vlans: [10, 20]) { _, _, _ in false }.isEmpty)
        #expect(Self.conclusions(four, vlans: [10], unreachable: ["n3"]) { a, _, _ in a == "n3" }.isEmpty)
        #expect(Self.conclusions(["fe", "n1"], vlans: [10], unreachable: ["n1"]) { _, _, _ in true }.isEmpty)
    }

    @Test func judgementNamesTheCulpritAndTellsLinkFromVLAN() {
        typealias O = VLANVerification.Observation
        let hosts = ["h1", "h2", "h3"]
        var observations: [O] = []
        // Untagged: everyone hears everyone. VID 10: h3 neither sends nor receives tagged frames.
        for host in hosts {
            for peer in hosts where peer != host {
                observations.append(O(host: host, peer: peer, vlan: 0, sent: 3, replies: 3, received: 3, rttMicroseconds: [40, 50, 60]))
                let bad = host == "h3" || peer == "h3"
                observations.append(O(host: host, peer: peer, vlan: 10, sent: 3, replies: bad ? 0 : 3, received: bad ? 0 : 3))
            }
        }
        let result = VLANVerification.judge(hosts: hosts, vlans: [10], observations: observations)
        #expect(result.culprits == [10: "h3"] && result.noLink.isEmpty && !result.allOK)
        #expect(result.pairs.first { $0.vlan == 0 && $0.a == "h1" && $0.b == "h2" }?.rttP50Microseconds == 50)
        // One way: h1 hears nothing from h2, h2 hears h1.
        let oneWay = [O(host: "h1", peer: "h2", vlan: 10, sent: 3, replies: 0, received: 0), O(host: "h2", peer: "h1", vlan: 10, sent: 3, replies: 0, received: 3)]
        #expect(VLANVerification.judge(hosts: ["h1", "h2"], vlans: [10], observations: oneWay).pairs.first { $0.vlan == 10 }?.status == .oneWay(from: "h1", to: "h2"))
        // No link at all: the control fails too, and nobody is blamed for the VID.
        let dead = VLANVerification.judge(hosts: ["h1", "h2"], vlans: [10], observations: [])
        #expect(dead.noLink.count == 1 && dead.culprits.isEmpty)
        #expect(VLANVerification.judge(hosts: ["h1", "h2"], vlans: [10], observations: [], unreachable: ["h2"]).pairs.allSatisfy { $0.status == .unreachable("h2") })
        // A host that did not report is unreachable, never the culprit (the kernel method has no control round).
        let kernel = [O(host: "h2", peer: "h3", vlan: 10, sent: 3, replies: 3, received: 0), O(host: "h3", peer: "h2", vlan: 10, sent: 3, replies: 3, received: 0)]
        let late = VLANVerification.judge(hosts: ["h1", "h2", "h3"], vlans: [10], observations: kernel, unreachable: ["h1"], control: false)
        #expect(late.culprits.isEmpty && late.pairs.filter { $0.status == .ok }.count == 1, "\(late)")
    }

    @Test func everyTaggedVIDFailingWhileUntaggedPassesIsExplained() {
        let cut: [(vlan: Int, passed: Bool)] = [(0, true), (0, true), (10, false), (10, false), (20, false), (20, false)]
        let advice = VLANVerification.advice(pairs: cut, method: .raw)
        #expect(advice.count == 2 && advice[0].contains("NICs drop VIDs") && advice[1].contains("--method kernel"), "\(advice)")
        #expect(VLANVerification.advice(pairs: cut, method: .kernel).first?.contains("trunks") == true)
        // One VID passing somewhere, or no link at all: the matrix and the culprit say it; no advice.
        #expect(VLANVerification.advice(pairs: [(0, true), (10, true), (20, false)], method: .raw).isEmpty)
        #expect(VLANVerification.advice(pairs: [(0, false), (10, false)], method: .raw).isEmpty)
        #expect(VLANVerification.advice(pairs: [(0, true), (0, true)], method: .raw).isEmpty)
    }
}
