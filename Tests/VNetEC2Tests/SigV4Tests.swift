import Testing
@testable import VNetEC2

/// SigV4 against AWS's published examples, and every way a request is refused.
@Suite struct SigV4Tests {
    static let exampleSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let keys = AccessKeys([.init(id: "AKIDEXAMPLE00000", secret: exampleSecret, user: "alice", admin: false)])
    /// 2015-08-30T12:36:00Z, the time of AWS's examples.
    static let exampleTime = SigV4Verifier.parseAmzDate("20150830T123600Z")!

    @Test func datesRoundTrip() {
        #expect(Self.exampleTime == 1_440_938_160)
        #expect(SigV4Verifier.amzDate(Self.exampleTime) == "20150830T123600Z")
        #expect(SigV4Verifier.amzDate(951_782_400) == "20000229T000000Z")
        #expect(SigV4Verifier.parseAmzDate("20150830T123600") == nil)
        #expect(SigV4Verifier.parseAmzDate("2015083OT123600Z") == nil)
    }

    /// AWS's "signing process" example (IAM ListUsers): its signature, recomputed here, and accepted.
    @Test func awsDocumentedExampleIsAccepted() throws {
        let headers = [("Host", "iam.amazonaws.com"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                       ("X-Amz-Date", "20150830T123600Z")]
        let authorization = SigV4Verifier.authorization(accessKey: "AKIDEXAMPLE", secret: Self.exampleSecret, region: "us-east-1",
                                                        service: "iam", date: "20150830T123600Z", method: "GET", path: "/",
                                                        query: "Action=ListUsers&Version=2010-05-08", headers: headers, body: [])
        #expect(authorization.hasSuffix("Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"), "\(authorization)")
        // The example's key id is 11 characters, shorter than this gateway's keys; the verifier is given it directly.
        let verifier = SigV4Verifier(keys: AccessKeys([.init(id: "AKIDEXAMPLE00000", secret: Self.exampleSecret, user: "u", admin: false)]),
                                     region: "us-east-1", service: "iam")
        let request = SigV4Verifier.Request(method: "GET", path: "/", query: "Action=ListUsers&Version=2010-05-08",
                                            headers: headers + [("Authorization", authorization.replacingOccurrences(of: "AKIDEXAMPLE/", with: "AKIDEXAMPLE00000/"))], body: [])
        // Same signature under the longer id: the id is not part of the string to sign.
        #expect(try verifier.verify(request, now: Self.exampleTime + 60).user == "u")
    }

    /// AWS's test suite's get-vanilla: GET / with host and x-amz-date only.
    @Test func getVanilla() {
        let authorization = SigV4Verifier.authorization(accessKey: "AKIDEXAMPLE", secret: Self.exampleSecret, region: "us-east-1", service: "service",
                                                        date: "20150830T123600Z", method: "GET", path: "/", query: "",
                                                        headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")], body: [])
        #expect(authorization == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    func signedPost(_ body: String, secret: String = exampleSecret, key: String = "AKIDEXAMPLE00000", date: String = "20150830T123600Z",
                    region: String = "us-east-1") -> SigV4Verifier.Request {
        let headers = [("Host", "127.0.0.1:8773"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("X-Amz-Date", date)]
        let authorization = SigV4Verifier.authorization(accessKey: key, secret: secret, region: region, service: "ec2", date: date,
                                                        method: "POST", path: "/", query: "", headers: headers, body: Array(body.utf8))
        return .init(method: "POST", path: "/", query: "", headers: headers + [("Authorization", authorization)], body: Array(body.utf8))
    }

    var verifier: SigV4Verifier { SigV4Verifier(keys: Self.keys, region: "us-east-1") }

    func refusal(_ request: SigV4Verifier.Request, now: Double = exampleTime) -> EC2Error? {
        do { _ = try verifier.verify(request, now: now); return nil } catch { return error }
    }

    @Test func aSignedPostIsAcceptedAndEveryChangeRefused() throws {
        let body = "Action=DescribeSecurityGroups&Version=2016-11-15"
        #expect(try verifier.verify(signedPost(body), now: Self.exampleTime).user == "alice")

        var tampered = signedPost(body)
        tampered.body = Array("Action=DeleteSecurityGroup&Version=2016-11-15".utf8)
        #expect(refusal(tampered)?.code == "SignatureDoesNotMatch")
        var otherHost = signedPost(body)
        otherHost.headers[0].1 = "evil.example"
        #expect(refusal(otherHost)?.code == "SignatureDoesNotMatch")
        #expect(refusal(signedPost(body, secret: "wrong-secret-wrong-secret"))?.code == "SignatureDoesNotMatch")
        #expect(refusal(signedPost(body, key: "AKIDUNKNOWN00000"))?.code == "AuthFailure")
        #expect(refusal(signedPost(body, region: "eu-west-1"))?.code == "AuthFailure")
        // 15 minutes of skew either way are allowed; more is RequestExpired.
        #expect(refusal(signedPost(body), now: Self.exampleTime + 899) == nil)
        #expect(refusal(signedPost(body), now: Self.exampleTime + 901)?.code == "RequestExpired")
        #expect(refusal(signedPost(body), now: Self.exampleTime - 901)?.code == "RequestExpired")
        var unsigned = signedPost(body)
        unsigned.headers.removeLast()
        #expect(refusal(unsigned)?.code == "AuthFailure")
        var noDate = signedPost(body)
        noDate.headers.remove(at: 2)
        #expect(refusal(noDate)?.code == "AuthFailure")
        var garbage = signedPost(body)
        garbage.headers[3].1 = "AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=zz"
        #expect(refusal(garbage)?.code == "AuthFailure")
    }

    @Test func unsignedPayloadOnlyWithoutABody() {
        let body = "Action=DescribeSecurityGroups"
        var request = signedPost(body)
        request.headers.append(("x-amz-content-sha256", "UNSIGNED-PAYLOAD"))
        #expect(refusal(request)?.code == "SignatureDoesNotMatch")
    }

    /// A presigned GET as botocore makes it: X-Amz-* in the query, the signature over the rest.
    @Test func presignedQueryForm() throws {
        let date = "20150830T123600Z"
        var query = "Action=DescribeSecurityGroups&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=AKIDEXAMPLE00000%2F20150830%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Date=\(date)&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
        let headers = [("Host", "127.0.0.1:8773")]
        // The string to sign is the header form's with the auth parameters in the query: sign it the same way.
        let authorization = SigV4Verifier.authorization(accessKey: "AKIDEXAMPLE00000", secret: Self.exampleSecret, region: "us-east-1", service: "ec2",
                                                        date: date, method: "GET", path: "/", query: query, headers: headers, body: [])
        let signature = String(authorization.split(separator: "=").last!)
        query += "&X-Amz-Signature=\(signature)"
        let request = SigV4Verifier.Request(method: "GET", path: "/", query: query, headers: headers, body: [])
        #expect(try verifier.verify(request, now: Self.exampleTime + 10).user == "alice")
        #expect(refusal(request, now: Self.exampleTime + 301)?.code == "RequestExpired", "expired after X-Amz-Expires")
        let changed = SigV4Verifier.Request(method: "GET", path: "/", query: query.replacingOccurrences(of: "Describe", with: "Delete"), headers: headers, body: [])
        #expect(refusal(changed)?.code == "SignatureDoesNotMatch")
    }

    @Test func keyFileErrorsNameTheLine() throws {
        let good = "# comment\nAKIAVNETALICE0000001 alicesecretalicesecret0000 alice\nAKIAVNETADMIN0000001 adminsecretadminsecret0000 ops admin\n"
        let keys = try AccessKeys.parse(good, path: "keys")
        #expect(keys.key("AKIAVNETADMIN0000001")?.admin == true && keys.key("AKIAVNETALICE0000001")?.user == "alice")
        for (text, fragment) in [("AKIAVNETALICE0000001 short alice\n", "keys:1: the secret"),
                                 ("\nakia-lower alicesecretalicesecret0000 alice\n", "keys:2: access key id"),
                                 ("AKIAVNETALICE0000001 alicesecretalicesecret0000 al/ice\n", "keys:1: user of"),
                                 ("AKIAVNETALICE0000001 alicesecretalicesecret0000 alice root\n", "keys:1: expected"),
                                 (good + "AKIAVNETALICE0000001 alicesecretalicesecret0000 bob\n", "keys:4: access key AKIAVNETALICE0000001 is listed twice"),
                                 ("# nothing\n", "no access keys")] {
            #expect(throws: EC2KeyFileError.self) { try AccessKeys.parse(text, path: "keys") }
            do { _ = try AccessKeys.parse(text, path: "keys") } catch { #expect(error.description.contains(fragment), "\(error)") }
        }
    }
}
