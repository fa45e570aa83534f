import Testing
@testable import VNetCore

@Suite("eucalyptus.conf lexical layer")
struct ConfFileTests {
    @Test func quotingForms() {
        let file = ConfFile.parse("""
        # comment
        A="double quoted"
        B='single $NOT expanded'
        C=plain

        export D="x"
        E="a"'b'c   # trailing comment
        F=
        G="line one
        line two"
        H="escaped \\" quote"
        """)
        #expect(file.syntaxErrors.isEmpty)
        let values = Dictionary(uniqueKeysWithValues: file.assignments.map { ($0.key, $0.value) })
        #expect(values["A"] == "double quoted")
        #expect(values["B"] == "single $NOT expanded")
        #expect(values["C"] == "plain")
        #expect(values["D"] == "x")
        #expect(values["E"] == "abc")
        #expect(values["F"] == "")
        #expect(values["G"] == "line one\nline two")
        #expect(values["H"] == "escaped \" quote")
        #expect(file.last("B")?.usesExpansion == false)
        #expect(file.last("G")?.line == 9)
        #expect(file.last("H")?.line == 11)
    }

    @Test func expansionIsFlaggedOutsideSingleQuotes() {
        let file = ConfFile.parse("A=\"$HOME/x\"\nB=${X}\nC='$Y'\n")
        #expect(file.last("A")?.usesExpansion == true)
        #expect(file.last("B")?.usesExpansion == true)
        #expect(file.last("C")?.usesExpansion == false)
    }

    @Test func crlfLineEndings() {
        let file = ConfFile.parse("A=\"1\"\r\nB=2\r\n")
        #expect(file.syntaxErrors.isEmpty)
        #expect(file.last("B")?.value == "2")
    }

    @Test(arguments: [
        ("A = 1\n", 1, "A", "no spaces"),
        ("\n\nA=\"open\n", 3, "A", "never closed"),
        ("A='open\n", 1, "A", "never closed"),
        ("A=one two\n", 1, "A", "unexpected text"),
        ("just words\n", 1, "just", "not a KEY=value"),
        ("A=1; rm -rf /\n", 1, "A", "';'"),
        ("A=x|y\n", 1, "A", "shell operator"),
        ("1A=x\n", 1, "1A", "cannot start with a digit"),
    ])
    func syntaxErrorsNameTheLine(text: String, line: Int, key: String, fragment: String) {
        let file = ConfFile.parse(text)
        #expect(file.syntaxErrors.count == 1)
        let error = file.syntaxErrors.first
        #expect(error?.line == line)
        #expect(error?.key == key)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "no error")")
    }

    @Test func parsingContinuesAfterABadLine() {
        let file = ConfFile.parse("A = 1\nB=2\n")
        #expect(file.syntaxErrors.count == 1)
        #expect(file.last("B")?.value == "2")
    }
}

@Suite("eucalyptus.conf under random input")
struct ConfFileRobustnessTests {
    /// Random mixes of the characters that matter to the shell syntax and of VNET_* keys and values: parsing
    /// and validation never crash, every diagnostic points at a line of the file (or 0 for the file), and
    /// the same input always gives the same result.
    @Test(arguments: [UInt64(101), 102, 103, 104])
    func randomInputIsHandled(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        let pieces = ["VNET_MODE=", "VNET_SUBNET=", "VNET_NETMASK=", "VNET_MACMAP=", "VNET_PUBLICIPS=", "VNET_BRIDGE=",
                      "VNET_ADDRSPERNET=", "MANAGED", "STATIC", "\"", "'", "\\", "\n", "\r\n", " ", "\t", "#", "$", "`",
                      "=", ";", "|", "10.0.0.0", "255.255.0.0", "d0:0d:00:00:00:01=10.0.0.5", "-", "203.0.113.1",
                      "export ", "é", "\u{0}", "64", "br0", "eth0.10"]
        for _ in 0..<400 {
            let text = (0..<Int.random(in: 0...40, using: &random)).map { _ in pieces.randomElement(using: &random)! }.joined()
            let lines = text.unicodeScalars.filter { $0 == "\n" }.count + 1  // scalars: "\r\n" is one Character
            for role in HostRole.allCases {
                let check = ConfigValidator.validate(text: text, role: role)
                for diagnostic in check.diagnostics {
                    #expect((0...lines).contains(diagnostic.line), "seed \(seed): line \(diagnostic.line) of \(lines) for \(text.debugDescription)")
                    #expect(!diagnostic.message.isEmpty)
                }
                #expect(check.isValid == (check.mode != nil && !check.diagnostics.hasErrors))
                let again = ConfigValidator.validate(text: text, role: role)
                #expect(again.diagnostics == check.diagnostics)
            }
        }
    }
}
