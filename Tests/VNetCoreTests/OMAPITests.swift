import Testing
@testable import VNetCore

/// What the agent says to a running dhcpd: the hash that signs it, the messages' bytes, the session's checks
/// of dhcpd's answers, and the lease file's OMAPI records taken out before dhcpd starts.
@Suite("OMAPI: HMAC-SHA256, messages, session, lease file")
struct OMAPITests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() }

    @Test func sha256MatchesTheStandardsVectors() {
        #expect(Self.hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.hex(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Self.hex(SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000))) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // A message whose padding needs a block of its own (55, 56 and 64 bytes).
        #expect(Self.hex(SHA256.hash([UInt8](repeating: 0x61, count: 64))) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    @Test func hmacMatchesRFC4231() {
        #expect(Self.hex(SHA256.hmac(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(Self.hex(SHA256.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // Test case 6: a key longer than the block is hashed first.
        #expect(Self.hex(SHA256.hmac(key: [UInt8](repeating: 0xaa, count: 131), message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func base64MatchesRFC4648() {
        let cases = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in cases { #expect(Base64.encode(Array(plain.utf8)) == encoded, "\(plain)") }
        #expect(Base64.encode([0xff, 0xfe, 0xfd]) == "//79")
    }

    static let secret: [UInt8] = Array(0..<32)

    @Test func aMessageHasDhcpdsLayoutAndReadsBackWithItsSignature() throws {
        var message = OMAPIMessage(opcode: .open, values: [("type", Array("host".utf8))], object: [("name", Array("node-10.0.0.5".utf8))])
        message.authenticator = 7; message.id = 9
        let bytes = message.encoded(signingWith: Self.secret)
        // Header: authenticator id, signature length, opcode, handle, id, answered id.
        #expect(Array(bytes[0..<24]) == [0, 0, 0, 7, 0, 0, 0, 32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0])
        // Then "type" (name length 2 bytes, value length 4), the end of the message's values, the object's.
        #expect(Array(bytes[24..<34]) == [0, 4] + Array("type".utf8) + [0, 0, 0, 4])
        #expect(bytes.count == 24 + (2 + 4 + 4 + 4) + 2 + (2 + 4 + 4 + 13) + 2 + 32)
        // The signature covers everything but the authenticator id and itself.
        #expect(Array(bytes.suffix(32)) == SHA256.hmac(key: Self.secret, message: bytes[4..<(bytes.count - 32)]))

        let (decoded, length) = try #require(try OMAPIMessage.decode(bytes[...]))
        #expect(length == bytes.count)
        #expect(decoded.opcode == .open && decoded.authenticator == 7 && decoded.id == 9)
        #expect(decoded.value("type") == Array("host".utf8) && decoded.objectValue("name") == Array("node-10.0.0.5".utf8))
        #expect(decoded.isSigned(by: Self.secret))
        #expect(!decoded.isSigned(by: Self.secret.reversed()))
        var tampered = bytes
        tampered[35] ^= 1  // a letter of "host"
        #expect(try OMAPIMessage.decode(tampered[...])?.message.isSigned(by: Self.secret) == false)
        // Unsigned: no signature, length field 0.
        let plain = message.encoded(signingWith: nil)
        #expect(Array(plain[0..<8]) == [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(try OMAPIMessage.decode(plain[...])?.message.signature == [])
    }

    @Test func aShortOrHostileStreamIsAWaitOrAnErrorNeverAnOverread() throws {
        let message = OMAPIMessage(opcode: .update, handle: 3, values: [("result", OMAPIMessage.bigEndian(0))], object: [("name", [1, 2, 3])])
        let bytes = message.encoded(signingWith: Self.secret)
        for cut in 0..<bytes.count { #expect(try OMAPIMessage.decode(bytes[0..<cut]) == nil, "cut at \(cut)") }
        // Two messages back to back: the first is read, and the rest is left.
        let two = bytes + bytes
        #expect(try OMAPIMessage.decode(two[...])?.length == bytes.count)
        #expect(try OMAPIMessage.decode(two[bytes.count...])?.length == bytes.count)
        var badOpcode = bytes
        badOpcode[11] = 99
        #expect(throws: OMAPIMessage.DecodeError.self) { try OMAPIMessage.decode(badOpcode[...]) }
        var longSignature = bytes
        longSignature[7] = 200
        #expect(throws: OMAPIMessage.DecodeError.self) { try OMAPIMessage.decode(longSignature[...]) }
        // A value claiming 4 GiB.
        var huge = Array(bytes[0..<24]) + [0, 1, 0x61] + [0xff, 0xff, 0xff, 0xff]
        huge += [UInt8](repeating: 0, count: 10)
        #expect(throws: OMAPIMessage.DecodeError.self) { try OMAPIMessage.decode(huge[...]) }
        // Random bytes: decoded, waited on or refused, never a trap.
        var generator = SeededGenerator(seed: 16)
        for _ in 0..<2_000 {
            let noise = (0..<Int.random(in: 0..<80, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? OMAPIMessage.decode(noise[...])
        }
    }

    /// dhcpd's side of a conversation, made from the session's own requests.
    static func reply(to request: [UInt8], opcode: OMAPIMessage.Opcode, handle: UInt32 = 0, values: [(String, [UInt8])] = [],
                      object: [(String, [UInt8])] = [], signedWith key: [UInt8]?) throws -> OMAPIMessage {
        let asked = try #require(try OMAPIMessage.decode(request[...])).message
        var answer = OMAPIMessage(opcode: opcode, handle: handle, values: values, object: object)
        answer.answering = asked.id
        answer.id = 1000 + asked.id
        if key != nil { answer.authenticator = 1 }
        return try #require(try OMAPIMessage.decode(answer.encoded(signingWith: key)[...])).message
    }

    @Test func theSessionSignsOnceAuthenticatedAndBelievesOnlySignedSuccess() throws {
        var session = OMAPISession(secret: Self.secret)
        let open = session.openAuthenticator()
        let asked = try #require(try OMAPIMessage.decode(open.bytes[...])).message
        #expect(asked.signature.isEmpty && asked.value("type") == Array("authenticator".utf8))
        #expect(asked.objectValue("algorithm") == Array("hmac-sha256.SIG-ALG.REG.INT.".utf8) && asked.objectValue("name") == Array("vnet-omapi".utf8))
        // An answer to another request, or with no handle, does not authenticate.
        var stray = try Self.reply(to: open.bytes, opcode: .update, handle: 4, signedWith: nil)
        stray.answering += 1
        #expect(throws: OMAPISession.Failure.self) { try session.authenticated(by: stray, to: open.id) }
        #expect(throws: OMAPISession.Failure.self) { try session.authenticated(by: try Self.reply(to: open.bytes, opcode: .update, signedWith: nil), to: open.id) }
        try session.authenticated(by: try Self.reply(to: open.bytes, opcode: .update, handle: 4, signedWith: nil), to: open.id)
        #expect(session.authenticator == 4)

        let host = DHCPDConfig.Host(mac: MACAddress("d0:0d:00:00:01:05")!, address: IPv4Address("10.30.1.5")!)
        let create = session.createHost(host)
        let request = try #require(try OMAPIMessage.decode(create.bytes[...])).message
        #expect(request.authenticator == 4 && request.isSigned(by: Self.secret))
        #expect(request.objectValue("hardware-address") == [0xd0, 0x0d, 0, 0, 1, 5] && request.objectValue("ip-address") == [10, 30, 1, 5])
        #expect(request.objectValue("name") == Array("node-10.30.1.5".utf8) && request.value("exclusive") == [0, 0, 0, 1])
        #expect(create.id != open.id)

        // Success must be signed by the key; a refusal is a refusal either way, with dhcpd's words.
        let unsigned = try Self.reply(to: create.bytes, opcode: .update, handle: 9, signedWith: nil)
        #expect(throws: OMAPISession.Failure.self) { try session.answer(unsigned, to: create.id) }
        let forged = try Self.reply(to: create.bytes, opcode: .update, handle: 9, signedWith: Array(Self.secret.reversed()))
        #expect(throws: OMAPISession.Failure.self) { try session.answer(forged, to: create.id) }
        let signed = try Self.reply(to: create.bytes, opcode: .update, handle: 9, object: [("hardware-address", host.mac.bytes), ("ip-address", [10, 30, 1, 5])], signedWith: Self.secret)
        #expect(try session.answer(signed, to: create.id).handle == 9)
        #expect(OMAPISession.host(in: signed) == host)
        let refused = try Self.reply(to: create.bytes, opcode: .status, values: [("result", OMAPIMessage.bigEndian(18)), ("message", Array("specified object already exists".utf8))], signedWith: nil)
        #expect(throws: OMAPISession.Failure.refused(code: 18, message: "specified object already exists")) { try session.answer(refused, to: create.id) }
        let succeeded = try Self.reply(to: create.bytes, opcode: .status, values: [("result", OMAPIMessage.bigEndian(0))], signedWith: Self.secret)
        #expect(try session.answer(succeeded, to: create.id).opcode == .status)
        #expect(try OMAPIMessage.decode(session.delete(handle: 9).bytes[...])?.message.handle == 9)
    }

    @Test func theRenderedConfigIsItsHeadThenItsHostsAndCarriesTheKey() {
        let subnet = IPv4Network("10.30.1.0/24")!
        let config = DHCPDConfig(sharedNetwork: false, subnets: [.init(network: subnet, router: nil, broadcast: subnet.broadcast, dns: [])],
                                 hosts: [.init(mac: MACAddress("d0:0d:00:00:01:05")!, address: IPv4Address("10.30.1.5")!)], interfaces: ["eth0"])
        let control = DHCPDControl(port: 7911, secret: [0xff, 0xfe, 0xfd])
        let text = DHCPDConfRenderer.render(config, control: control)
        #expect(text == DHCPDConfRenderer.head(config, control: control) + "\n" + DHCPDConfRenderer.declaration(config.hosts[0]))
        #expect(text.contains("key vnet-omapi {\n  algorithm hmac-sha256;\n  secret \"//79\";\n}\nomapi-port 7911;\nomapi-key vnet-omapi;\n"))
        #expect(!DHCPDConfRenderer.render(config).contains("omapi"), "plans and views show no key")
        let redacted = DHCPDConfRenderer.redactingSecrets(text)
        #expect(!redacted.contains("//79") && redacted.contains("  secret \"(removed from this copy)\";\n"))
        #expect(redacted.replacingOccurrences(of: "(removed from this copy)", with: "//79") == text, "nothing else changes")
    }

    @Test func theLeaseFileLosesItsHostRecordsAndKeepsTheRest() {
        let leases = """
            # The format of this file is documented in the dhcpd.leases(5) manual page.
            # This lease file was written by isc-dhcp-4.4.3-P1

            # authoring-byte-order entry is generated, DO NOT DELETE
            authoring-byte-order little-endian;

            host node-10.30.1.5 {
              dynamic;
              hardware ethernet d0:0d:00:00:01:05;
              fixed-address 10.30.1.5;
            }
            lease 10.30.1.77 {
              starts 3 2026/12/02 14:00:00;
              client-hostname "a { tricky } name";
              uid "\\001\\"}";
            }
            host node-10.30.1.6 {
              dynamic;
              deleted;
            }
            # host in a comment { is not a host
            server-duid "\\000\\001";

            """
        let kept = DHCPDLeaseFile.removingHostDeclarations(leases)
        #expect(!kept.contains("host node-"))
        #expect(kept.contains("authoring-byte-order little-endian;\n"))
        #expect(kept.contains("lease 10.30.1.77 {\n  starts 3 2026/12/02 14:00:00;\n  client-hostname \"a { tricky } name\";\n  uid \"\\001\\\"}\";\n}\n"))
        #expect(kept.contains("# host in a comment { is not a host\nserver-duid \"\\000\\001\";\n"))
        #expect(DHCPDLeaseFile.removingHostDeclarations(kept) == kept)
        #expect(DHCPDLeaseFile.removingHostDeclarations("") == "")
        // An unfinished block at the end (dhcpd killed while writing) is left as it is.
        #expect(DHCPDLeaseFile.removingHostDeclarations("lease 1.2.3.4 {\n  starts") == "lease 1.2.3.4 {\n  starts")
        #expect(DHCPDLeaseFile.removingHostDeclarations("hostile-option 1;\nhost x {\n}\n") == "hostile-option 1;\n")
    }
}
