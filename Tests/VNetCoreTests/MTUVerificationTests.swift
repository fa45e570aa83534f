import Testing
@testable import VNetCore

@Suite("verify-vlan --mtu: padded probes, the search, the findings")
struct MTUVerificationTests {
    let a = MACAddress("02:00:00:00:00:0a")!, b = MACAddress("02:00:00:00:00:0b")!

    @Test func anMTUProbeFillsItsSizeAndCountsOnlyWhole() throws {
        let probe = VLANProbe(destination: b, source: a, vlan: 20, kind: .probe, nonce: 7, sequence: 3, sentNanoseconds: 11, sender: "n1", size: 1500)
        let frame = probe.frame
        #expect(frame.count == 18 + 1500, "Ethernet header and tag, then exactly the size an MTU counts")
        #expect(VLANProbe.parse(frame, strippedVLAN: nil) == probe)
        var stripped = frame
        stripped.removeSubrange(12..<16)
        #expect(VLANProbe.parse(stripped, strippedVLAN: 20)?.size == 1500, "the kernel took the tag: the size is still whole")
        #expect(VLANProbe.parse(Array(frame.dropLast()), strippedVLAN: nil) == nil, "a byte short: not believed")
        #expect(VLANProbe.parse(frame + [0], strippedVLAN: nil) == nil, "a byte long: not what was sent")
        let untagged = VLANProbe(destination: b, source: a, vlan: 0, kind: .probe, nonce: 7, sequence: 3, sentNanoseconds: 11, sender: "n1", size: 9000)
        #expect(untagged.frame.count == 14 + 9000 && VLANProbe.parse(untagged.frame, strippedVLAN: nil)?.size == 9000)
        let ack = probe.reply(from: b, name: "n2")
        #expect(ack.frame.count == 60 && ack.size == 1500 && VLANProbe.parse(ack.frame, strippedVLAN: nil) == ack,
                "the acknowledgement is small and says which size arrived")
        // An ordinary probe as earlier versions sent it (nothing after the name but padding) reads as size 0.
        let ordinary = VLANProbe(destination: b, source: a, vlan: 20, kind: .probe, nonce: 7, sequence: 3, sentNanoseconds: 11, sender: "n1")
        #expect(ordinary.frame.count == 60 && VLANProbe.parse(ordinary.frame, strippedVLAN: nil)?.size == 0)
        let done = VLANProbe(destination: b, source: a, vlan: 20, kind: .done, nonce: 7, sequence: 4, sentNanoseconds: 11, sender: "n1")
        #expect(VLANProbe.parse(done.frame, strippedVLAN: nil)?.kind == .done)
        #expect(VLANProbe.smallestSize(sender: "n1") == 46 && VLANProbe.smallestSize(sender: String(repeating: "x", count: 40)) == 63)
        for length in 0..<80 { _ = VLANProbe.parse(Array(frame.prefix(length)), strippedVLAN: nil) }
    }

    /// Runs one search against a path that carries sizes up to `limit`, answering at once; `lose(size, attempt)`
    /// drops a frame. Returns the outcome and how many probes were sent.
    static func search(limit: Int, ceiling: Int = 9000, preferred: [Int] = [1500], lose: (Int, Int) -> Bool = { _, _ in false })
        -> (MTUSearch.Outcome?, Int, Double) {
        var search = MTUSearch(ceiling: ceiling, floor: 46, preferred: preferred)
        let target = MTUSearch.Target(peer: "n2", vlan: 20)
        var now = 100.0
        search.sample(roundTrip: 0.001)
        var pending = search.start(target, now: now)
        var sent = 0
        var attempts: [Int: Int] = [:]
        while !search.finished, now < 200 {
            let batch = pending
            pending = []
            for probe in batch {
                sent += 1
                attempts[probe.size, default: 0] += 1
                if probe.size <= limit, !lose(probe.size, attempts[probe.size]!) {
                    pending += search.acknowledged(target, size: probe.size, now: now)
                }
            }
            if pending.isEmpty {
                now += 0.005
                pending = search.tick(now: now)
            }
        }
        return (search.outcome(target), sent, now - 100)
    }

    @Test func theSearchFindsTheLargestFrameToTheByte() throws {
        #expect(Self.search(limit: 9000).0 == .init(passed: 9000, failed: nil), "the ceiling passes: nothing larger can be sent")
        let clean = Self.search(limit: 9000)
        #expect(clean.1 == 2, "one step, the ceiling and 1500: \(clean.1) probes")
        #expect(Self.search(limit: 1500).0 == .init(passed: 1500, failed: 1501))
        #expect(Self.search(limit: 1499).0 == .init(passed: 1499, failed: 1500))
        #expect(Self.search(limit: 8999).0 == .init(passed: 8999, failed: 9000))
        #expect(Self.search(limit: 9000, ceiling: 1500).0 == .init(passed: 1500, failed: nil), "a host of MTU 1500 cannot ask for more")
        #expect(Self.search(limit: 40).0 == .init(passed: 46, failed: 47), "nothing above the ordinary probe passes: said as it is")
        var generator = SeededGenerator(seed: 15)
        for _ in 0..<200 {
            let limit = Int.random(in: 46...9000, using: &generator)
            let (outcome, sent, seconds) = Self.search(limit: limit)
            #expect(outcome == .init(passed: limit, failed: limit == 9000 ? nil : limit + 1), "limit \(limit): \(String(describing: outcome))")
            #expect(sent <= 100, "limit \(limit): \(sent) probes")
            #expect(seconds < 1.0, "limit \(limit): \(seconds) s of simulated waiting at a 20 ms timeout")
        }
    }

    @Test func lostFramesAreNotASmallMTU() throws {
        // A burst lost for a while (every send of the first two steps): the size closing the gap is asked again
        // before the search ends, and the search goes on above it.
        var now = 0.0
        let burstUntil = 0.3
        var burst = MTUSearch(ceiling: 9000, floor: 46, preferred: [1500])
        let lost = MTUSearch.Target(peer: "n3", vlan: 20)
        var out = burst.start(lost, now: now)
        while !burst.finished, now < 30 {
            for probe in out where now >= burstUntil || probe.size < 1500 { _ = burst.acknowledged(lost, size: probe.size, now: now) }
            now += 0.021
            out = burst.tick(now: now)
        }
        #expect(burst.outcome(lost) == .init(passed: 9000, failed: nil), "\(String(describing: burst.outcome(lost)))")

        // Every size's first and second sends are lost: the third arrives.
        let lossy = Self.search(limit: 1500, lose: { _, attempt in attempt < 3 })
        #expect(lossy.0 == .init(passed: 1500, failed: 1501), "\(String(describing: lossy.0))")
        // An answer that comes after its size was given up: the search opens again and ends right.
        var search = MTUSearch(ceiling: 9000, floor: 46, preferred: [])
        let target = MTUSearch.Target(peer: "n2", vlan: 0)
        now = 0.0
        #expect(search.start(target, now: now) == [.init(target: target, size: 9000)])
        while !search.finished {
            now += 0.021
            for probe in search.tick(now: now) where probe.size <= 4000 { _ = search.acknowledged(target, size: probe.size, now: now) }
        }
        #expect(search.outcome(target) == .init(passed: 4000, failed: 4001))
        // 6000 was given up, yet its answer comes now: the search opens again above it and ends right.
        let reopened = search.acknowledged(target, size: 6000, now: now)
        #expect(!search.finished && !reopened.isEmpty && reopened.allSatisfy { (6001..<9000).contains($0.size) },
                "6000 arrived after all: the gap up to the refused 9000 is searched again: \(reopened.map(\.size))")
        while !search.finished {
            now += 0.021
            for probe in search.tick(now: now) where probe.size <= 6000 { _ = search.acknowledged(target, size: probe.size, now: now) }
        }
        #expect(search.outcome(target) == .init(passed: 6000, failed: 6001))
        _ = search.acknowledged(target, size: 9000, now: now)
        #expect(search.outcome(target) == .init(passed: 9000, failed: nil), "the ceiling's answer ends it: nothing larger can be asked")
        #expect(search.start(target, now: now).isEmpty, "a target is searched once")

        // The first step's 1500 is answered only after it was given up (a host busy for 60 ms), while the search
        // went on below it: the answer reopens the gap up to the ceiling, which stays refused.
        var late = MTUSearch(ceiling: 9000, floor: 46, preferred: [1500])
        now = 0
        _ = late.start(target, now: now)
        var heldBack = true
        while !late.finished || heldBack {
            now += 0.021
            if late.finished, heldBack {
                heldBack = false
                _ = late.acknowledged(target, size: 1500, now: now)
                continue
            }
            for probe in late.tick(now: now) where probe.size <= 3000 && probe.size != 1500 { _ = late.acknowledged(target, size: probe.size, now: now) }
        }
        #expect(late.outcome(target) == .init(passed: 3000, failed: 3001), "not (1500, nothing failed): \(String(describing: late.outcome(target)))")
        // The timeout: RFC 6298's estimators over every round trip, between 20 ms and 0.5 s; one slow first
        // sample (a fleet starting at once) is soon outweighed.
        var timing = MTUSearch(ceiling: 9000, floor: 46)
        #expect(timing.timeout == 0.05, "nothing measured yet")
        timing.sample(roundTrip: 0.3)
        #expect(timing.timeout == 0.5)
        for _ in 0..<40 { timing.sample(roundTrip: 0.002) }
        #expect(timing.timeout < 0.03, "\(timing.timeout)")
        for _ in 0..<40 { timing.sample(roundTrip: 0.0001) }
        #expect(timing.timeout == 0.02)
    }

    static let interfaces = ["fe", "n1", "n2", "n3"].map { MTUVerification.Interface(host: $0, name: "eth0", mtu: 9000) }

    /// Every direction between `hosts` on `vlans` passing 9000, except where `limit` says less.
    static func paths(_ hosts: [String], vlans: [Int], limit: (String, String, Int) -> Int? = { _, _, _ in nil }) -> [MTUVerification.Path] {
        hosts.flatMap { from in
            hosts.filter { $0 != from }.flatMap { to in
                vlans.map { vlan in
                    let passed = limit(from, to, vlan) ?? 9000
                    return MTUVerification.Path(from: from, to: to, vlan: vlan, passed: passed, failed: passed < 9000 ? passed + 1 : nil)
                }
            }
        }
    }

    @Test func aShortPortIsNamedByItsHostAndVID() throws {
        let expected = MTUVerification.Expectation(mtu: 9000, source: "VNET_MTU")
        let hosts = ["fe", "n1", "n2", "n3"]
        #expect(MTUVerification.findings(paths: Self.paths(hosts, vlans: [0, 20]), interfaces: Self.interfaces, expected: expected).isEmpty)
        // n3's switch port carries 1500 on VID 20 only, both ways.
        let short = Self.paths(hosts, vlans: [0, 20]) { from, to, vlan in vlan == 20 && (from == "n3" || to == "n3") ? 1500 : nil }
        let findings = MTUVerification.findings(paths: short, interfaces: Self.interfaces, expected: expected)
        #expect(findings.count == 1, "\(findings)")
        #expect(findings.first?.hasPrefix("VID 20: n3's side passes at most 1500 to and from every other host") == true, "\(findings)")
        #expect(findings.first?.contains("passes 1500 but not 9000 (") == true, "\(findings)")
        // Frames towards n3 only (a port whose egress is short; n3's own frames pass).
        let towards = Self.paths(hosts, vlans: [20]) { _, to, _ in to == "n3" ? 1504 : nil }
        let inward = MTUVerification.findings(paths: towards, interfaces: Self.interfaces, expected: expected)
        #expect(inward.count == 1 && inward[0].hasPrefix("VID 20: frames towards n3 pass at most 1504 from every other host (frames from n3 pass)"), "\(inward)")
        let outward = MTUVerification.findings(paths: Self.paths(hosts, vlans: [20]) { from, _, _ in from == "n3" ? 1504 : nil },
                                               interfaces: Self.interfaces, expected: expected)
        #expect(outward.count == 1 && outward[0].hasPrefix("VID 20: frames from n3 pass at most 1504 to every other host (frames towards n3 pass)"), "\(outward)")
        // One direction between two hosts that pass with others.
        let one = Self.paths(hosts, vlans: [20]) { from, to, _ in from == "n3" && to == "fe" ? 1500 : nil }
        #expect(MTUVerification.findings(paths: one, interfaces: Self.interfaces, expected: expected)
                == ["VID 20: n3 -> fe passes 1500 but not 9000 (n3's eth0 MTU 9000, fe's eth0 MTU 9000)"])
        // Every path short: the VID (or the trunks), not one host.
        let trunk = Self.paths(hosts, vlans: [0, 30]) { _, _, vlan in vlan == 30 ? 4000 : nil }
        #expect(MTUVerification.findings(paths: trunk, interfaces: Self.interfaces, expected: expected)
                == ["VID 30: no path passes the expected size (largest that passes: 4000): the switches or trunks carry less than 9000 on VID 30"])
        // Two hosts: either side.
        let two = Self.paths(["fe", "n1"], vlans: [20]) { _, _, _ in 1500 }
        #expect(MTUVerification.findings(paths: two, interfaces: Self.interfaces, expected: expected).allSatisfy { $0.contains("either side") })
    }

    @Test func interfaceMTUsThatDifferAreNamedEvenWhenEveryFramePasses() throws {
        var interfaces = Self.interfaces
        interfaces[2].mtu = 1500  // n2
        // n2 can send 1500 only, and takes no more: every path its own MTU allows passes.
        let paths = Self.paths(["fe", "n1", "n2", "n3"], vlans: [20]) { from, to, _ in from == "n2" || to == "n2" ? 1500 : nil }
            .map { path in var path = path; if path.from == "n2" { path.failed = nil }; return path }
        let findings = MTUVerification.findings(paths: paths, interfaces: interfaces, expected: .init(mtu: 9000, source: "fe's eth0 MTU (VNET_MTU unset)"))
        #expect(findings == ["interface MTUs differ: 9000 on fe (eth0), n1 (eth0), n3 (eth0); 1500 on n2 (eth0): frames the larger ones send are dropped where they arrive at a smaller one",
                             "n2: eth0 MTU 1500, below the expected 9000 (fe's eth0 MTU (VNET_MTU unset))"], "\(findings)")
        // Expected 1500: the mismatch is still named, nothing is short.
        let relaxed = MTUVerification.findings(paths: paths, interfaces: interfaces, expected: .init(mtu: 1500, source: "VNET_MTU"))
        #expect(relaxed.count == 1 && relaxed[0].hasPrefix("interface MTUs differ"))
    }

    @Test func theExpectationIsTheOperatorsElseTheFrontEndsElseTheLargest() throws {
        var interfaces = Self.interfaces
        interfaces[0].mtu = 1500
        #expect(MTUVerification.expectation(configured: .init(mtu: 4000, source: "VNET_MTU"), frontend: "fe", interfaces: interfaces)?.mtu == 4000)
        #expect(MTUVerification.expectation(configured: nil, frontend: "fe", interfaces: interfaces)?.mtu == 1500)
        let largest = MTUVerification.expectation(configured: nil, frontend: "fe", interfaces: Array(interfaces.dropFirst()))
        #expect(largest?.mtu == 9000 && largest?.source.contains("the front end not taking part") == true)
        #expect(MTUVerification.expectation(configured: nil, frontend: "fe", interfaces: []) == nil)
    }
}
