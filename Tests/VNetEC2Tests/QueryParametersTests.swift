import Testing
@testable import VNetEC2

@Suite struct QueryParametersTests {
    func parameters(_ text: String) throws -> QueryParameters {
        var parameters = QueryParameters()
        try parameters.add(QueryParameters.parse(text, plusIsSpace: true))
        return parameters
    }

    @Test func ec2ListEncoding() throws {
        let p = try parameters("Action=AuthorizeSecurityGroupIngress&GroupName=web+servers&IpPermissions.2.IpProtocol=icmp"
                               + "&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0%2F8"
                               + "&IpPermissions.1.IpRanges.2.CidrIp=192.0.2.0%2F24&GroupId.1=sg-1&GroupId.3=sg-3")
        #expect(p["GroupName"] == "web servers")
        let permissions = try p.members("IpPermissions")
        #expect(permissions.map { $0["IpProtocol"] } == ["tcp", "icmp"])
        #expect(try permissions[0].members("IpRanges").map { $0["CidrIp"] } == ["10.0.0.0/8", "192.0.2.0/24"])
        #expect(try p.list("GroupId") == ["sg-1", "sg-3"])
    }

    @Test func badInputIsNamed() {
        for (text, fragment) in [("A=1&A=2", "A"), ("A=%zz", "percent"), ("A=%C3%28", "percent"), ("=x", "no name")] {
            do { _ = try parameters(text); Issue.record("accepted \(text)") } catch { #expect("\(error)".contains(fragment), "\(error)") }
        }
        for text in ["GroupId.0=x", "GroupId.01=x", "GroupId.x=1", "GroupId.1001=x", "GroupId.1x=y"] {
            #expect(throws: EC2Error.self, "\(text)") { try parameters(text).list("GroupId") }
        }
        let many = (0...QueryParameters.maxParameters).map { "P\($0)=1" }.joined(separator: "&")
        #expect(throws: EC2Error.self) { try parameters(many) }
    }

    @Test func uriEncodingIsSigV4s() {
        #expect(QueryParameters.uriEncode("a b/c~d_e.f-g+h*") == "a%20b%2Fc~d_e.f-g%2Bh%2A")
        #expect(QueryParameters.uriEncode("/services/compute", keepSlash: true) == "/services/compute")
        #expect(QueryParameters.uriEncode("é") == "%C3%A9")
    }

    @Test func xmlEscapesEverything() {
        #expect(EC2XML.escape("<a href=\"x\">&'\u{1}</a>") == "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{fffd}&lt;/a&gt;")
    }

    @Test func filtersGlob() {
        #expect(Filters.glob("we*", "web") && Filters.glob("w?b", "web") && Filters.glob("*", "") && !Filters.glob("db*", "web"))
        #expect(Filters.glob("*b*c", "abxbc") && !Filters.glob("a*c", "abcd"))
    }
}
