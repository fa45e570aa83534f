import Foundation
import Testing
import ZMQ

@Suite("ZeroMQ wrapper on real sockets")
struct ZMQTests {
    @Test func routerDealerRoundTripWithMetadata() throws {
        let context = ZMQContext()
        let router = try ZMQSocket(context, .router)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.connect(router.lastEndpoint)
        try dealer.send([[1, 2, 3], []])  // an empty last frame too
        let readable = try ZMQPoller.readable([router], timeoutMilliseconds: 2000)
        #expect(readable == [true])
        let message = try #require(try router.receive())
        #expect(message.frames.count == 3)
        #expect(message.frames[1] == [1, 2, 3] && message.frames[2] == [])
        #expect(message.peerAddress == "127.0.0.1")
        try router.send([message.frames[0], Array("pong".utf8)])
        _ = try ZMQPoller.readable([dealer], timeoutMilliseconds: 2000)
        #expect(try dealer.receive()?.frames == [Array("pong".utf8)])
        #expect(try dealer.receive(wait: false) == nil)
    }

    /// The socket set says which of many sockets to look at: those signalled since, and those marked (just
    /// added, or sent on), not the others.
    @Test func aSocketSetGivesTheSocketsThatHaveMessages() throws {
        let context = ZMQContext()
        let router = try ZMQSocket(context, .router)
        try router.bind("tcp://127.0.0.1:*")
        let dealers = try (0..<8).map { _ in let dealer = try ZMQSocket(context, .dealer); try dealer.connect(router.lastEndpoint); return dealer }
        let set = try ZMQSocketSet()
        for (tag, dealer) in dealers.enumerated() { try set.add(dealer, tag: tag) }
        #expect(set.ready(timeoutMilliseconds: 0) == Array(0..<8), "just added: each looked at once")
        for dealer in dealers { #expect(try dealer.receive(wait: false) == nil) }
        #expect(set.ready(timeoutMilliseconds: 50).isEmpty, "nothing arrived")

        // Dealers 3 and 6 say hello; the router answers both.
        for tag in [3, 6] { try dealers[tag].send([Array("hello \(tag)".utf8)]); set.mark(tag) }
        var identities: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(2)
        while identities.count < 2, Date() < deadline {
            _ = try ZMQPoller.readable([router], timeoutMilliseconds: 100)
            while let message = try router.receive(wait: false) { identities.append(message.frames[0]) }
        }
        #expect(Set(set.ready(timeoutMilliseconds: 0)) == [3, 6], "marked after their sends")
        for identity in identities { try router.send([identity, Array("welcome".utf8)]) }
        var answered: Set<Int> = []
        while answered.count < 2, Date() < deadline {
            for tag in set.ready(timeoutMilliseconds: 100) {
                while let message = try dealers[tag].receive(wait: false) {
                    #expect(message.frames == [Array("welcome".utf8)])
                    answered.insert(tag)
                }
            }
        }
        #expect(answered == [3, 6])
        #expect(set.ready(timeoutMilliseconds: 50).filter { (try? dealers[$0].receive(wait: false)) != nil }.isEmpty, "nothing more for anyone")
    }

    @Test func curveWithZAPAdmitsOnlyKnownKeysAndNamesThem() throws {
        #expect(ZMQContext.hasCurve)
        let context = ZMQContext()
        let server = try ZMQCurve.generateKeyPair(), good = try ZMQCurve.generateKeyPair(), bad = try ZMQCurve.generateKeyPair()
        #expect(try ZMQCurve.publicKey(fromSecret: good.secretKey) == good.publicKey)
        let zap = try ZMQSocket(context, .rep)
        try zap.bind("inproc://zeromq.zap.01")
        let router = try ZMQSocket(context, .router)
        try router.set(.curveServer, 1)
        try router.set(.curveSecretKey, server.secretKey)
        try router.set(.zapDomain, "test")
        try router.bind("tcp://127.0.0.1:*")
        func client(_ keys: ZMQCurve.KeyPair) throws -> ZMQSocket {
            let dealer = try ZMQSocket(context, .dealer)
            try dealer.set(.curveServerKey, server.publicKey)
            try dealer.set(.curvePublicKey, keys.publicKey)
            try dealer.set(.curveSecretKey, keys.secretKey)
            try dealer.connect(router.lastEndpoint)
            try dealer.send([Array("hello from \(keys.publicKey.prefix(4))".utf8)])
            return dealer
        }
        let accepted = try client(good), refused = try client(bad)
        var received: [ZMQMessage] = []
        let deadline = Date().addingTimeInterval(3)
        while Date() < deadline, received.isEmpty {
            let ready = try ZMQPoller.readable([zap, router], timeoutMilliseconds: 100)
            if ready[0], let request = try zap.receive() {
                let key = ZMQCurve.z85(request.frames[6])
                let ok = key == good.publicKey
                try zap.send([request.frames[0], request.frames[1], Array((ok ? "200" : "400").utf8), [], Array((ok ? "node-a" : "").utf8), []])
            }
            if ready[1], let message = try router.receive() { received.append(message) }
        }
        // Give the refused client time to have been refused, then check nothing of it arrived.
        for _ in 0..<5 {
            let ready = try ZMQPoller.readable([zap, router], timeoutMilliseconds: 100)
            if ready[0], let request = try zap.receive() {
                try zap.send([request.frames[0], request.frames[1], Array("400".utf8), [], [], []])
            }
            if ready[1], let message = try router.receive() { received.append(message) }
        }
        #expect(received.count == 1)
        #expect(received.first?.userID == "node-a")
        _ = (accepted, refused)
    }

    @Test func keysAreZ85() throws {
        let pair = try ZMQCurve.generateKeyPair()
        #expect(ZMQCurve.isZ85Key(pair.publicKey) && ZMQCurve.isZ85Key(pair.secretKey))
        #expect(!ZMQCurve.isZ85Key("too short"))
        #expect(throws: ZMQError.self) { try ZMQCurve.publicKey(fromSecret: "x") }
    }
}
