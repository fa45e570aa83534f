import Crypto

/// AWS Signature Version 4, verified: the canonical request exactly as AWS defines it, in both of its forms
/// (the `Authorization` header, and the presigned URL's `X-Amz-*` query parameters), the credential scope
/// (this gateway's region, service `ec2`), the clock-skew limit and the presigned URL's expiry.
///
/// The string compared is recomputed from what arrived: nothing the client says about its own canonical form
/// is believed. A mismatch is `SignatureDoesNotMatch`; an unknown key is `AuthFailure`; a request outside its
/// time window is `RequestExpired` (EC2's codes).
public struct SigV4Verifier: Sendable {
    public var region: String
    public var service: String
    /// Seconds a request's date may differ from the gateway's clock (EC2: 15 minutes).
    public var maxSkew: Double
    public let keys: AccessKeys

    public init(keys: AccessKeys, region: String, service: String = "ec2", maxSkew: Double = 900) {
        self.keys = keys
        self.region = region
        self.service = service
        self.maxSkew = maxSkew
    }

    /// What arrived, as it arrived: the path and query still percent-encoded, the headers with their names
    /// as sent (compared without case), the body's bytes.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        public var query: String
        public var headers: [(String, String)]
        public var body: [UInt8]

        public init(method: String, path: String, query: String, headers: [(String, String)], body: [UInt8]) {
            self.method = method; self.path = path; self.query = query; self.headers = headers; self.body = body
        }

        func header(_ name: String) -> [String] {
            headers.filter { $0.0.lowercased() == name }.map(\.1)
        }
    }

    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// The key that signed `request`, or why it is refused. `now`: seconds since 1970.
    public func verify(_ request: Request, now: Double) throws(EC2Error) -> AccessKeys.Key {
        let fields: SignatureFields
        let queryPairs = try QueryParameters.parse(request.query, plusIsSpace: false)
        if let authorization = request.header("authorization").first {
            fields = try Self.headerFields(authorization)
        } else if queryPairs.contains(where: { $0.0 == "X-Amz-Algorithm" }) {
            fields = try Self.queryFields(queryPairs)
        } else {
            throw EC2Error.authFailure("The request is not signed: an Authorization header or X-Amz-* query parameters with AWS Signature Version 4 are required")
        }
        let scope = fields.credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, !scope[0].isEmpty else {
            throw EC2Error.authFailure("Credential '\(fields.credential.prefix(128))' is not ACCESSKEY/DATE/REGION/SERVICE/aws4_request")
        }
        guard let key = keys.key(scope[0]) else {
            throw EC2Error.authFailure("AWS was not able to validate the provided access credentials: unknown access key '\(scope[0].prefix(128))'")
        }
        guard scope[2] == region, scope[3] == service, scope[4] == "aws4_request" else {
            throw EC2Error.authFailure("Credential should be scoped to a valid region and service: '\(region)/\(service)/aws4_request', not '\(scope[2...].joined(separator: "/").prefix(128))'")
        }
        let dateText: String
        if fields.fromQuery {
            dateText = queryPairs.first { $0.0 == "X-Amz-Date" }?.1 ?? ""
        } else {
            guard let date = request.header("x-amz-date").first else {
                throw EC2Error.authFailure("the X-Amz-Date header is required with AWS Signature Version 4")
            }
            dateText = date
        }
        guard let signedAt = Self.parseAmzDate(dateText) else {
            throw EC2Error.authFailure("X-Amz-Date '\(dateText.prefix(32))' is not YYYYMMDD'T'HHMMSS'Z'")
        }
        guard dateText.prefix(8) == scope[1] else {
            throw EC2Error.signatureDoesNotMatch("Credential date \(scope[1].prefix(16)) is not the date of X-Amz-Date \(dateText)")
        }
        if fields.fromQuery {
            let expires = fields.expires ?? 0
            if signedAt - maxSkew > now { throw EC2Error.requestExpired("Request is not valid yet: signed for \(dateText), \(Int(signedAt - now)) s ahead of the gateway's clock") }
            if now > signedAt + Double(expires) { throw EC2Error.requestExpired("Request has expired: signed at \(dateText) for \(expires) s") }
        } else if abs(now - signedAt) > maxSkew {
            throw EC2Error.requestExpired("Request timestamp \(dateText) differs from the gateway's clock by \(Int(abs(now - signedAt))) s (at most \(Int(maxSkew)) s)")
        }
        let signed = fields.signedHeaders.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        guard !signed.isEmpty, signed == signed.sorted(), Set(signed).count == signed.count,
              signed.allSatisfy({ !$0.isEmpty && $0 == $0.lowercased() }) else {
            throw EC2Error.signatureDoesNotMatch("SignedHeaders '\(fields.signedHeaders.prefix(256))' is not a sorted list of lower-case names")
        }
        guard signed.contains("host") else { throw EC2Error.signatureDoesNotMatch("the host header must be signed") }
        if !fields.fromQuery, !signed.contains("x-amz-date") { throw EC2Error.signatureDoesNotMatch("the x-amz-date header must be signed") }
        for name in signed where request.header(name).isEmpty {
            throw EC2Error.signatureDoesNotMatch("signed header '\(name.prefix(64))' is not in the request")
        }
        let stringToSign = Self.stringToSign(method: request.method, path: request.path,
                                             query: queryPairs.filter { !(fields.fromQuery && $0.0 == "X-Amz-Signature") },
                                             headers: request.headers, signed: signed, payloadHash: try payloadHash(request, signed: signed),
                                             date: dateText, scope: scope[1...].joined(separator: "/"))
        guard let provided = Self.unhex(fields.signature), provided.count == 32 else {
            throw EC2Error.signatureDoesNotMatch("Signature is not 64 hex digits")
        }
        let signingKey = Self.signingKey(secret: key.secret, date: scope[1], region: scope[2], service: scope[3])
        // Constant time: a timing difference must not tell how much of a guessed signature was right.
        guard HMAC<SHA256>.isValidAuthenticationCode(provided, authenticating: Array(stringToSign.utf8), using: signingKey) else {
            throw EC2Error.signatureDoesNotMatch("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
        }
        return key
    }

    /// The body's SHA-256, which the signature covers. A client may send it as x-amz-content-sha256; it must
    /// then be the body's. UNSIGNED-PAYLOAD is accepted only for an empty body: the parameters of a POST
    /// are in its body, and a signature that did not cover them would let them be changed on the way.
    func payloadHash(_ request: Request, signed: [String]) throws(EC2Error) -> String {
        let actual = Self.hex(SHA256.hash(data: request.body))
        // Without the header (every EC2 client; a presigned URL too): the body's hash, the empty body's for a GET.
        guard let claimed = request.header("x-amz-content-sha256").first else { return actual }
        if claimed == Self.unsignedPayload {
            guard request.body.isEmpty else { throw EC2Error.signatureDoesNotMatch("UNSIGNED-PAYLOAD is not accepted for a request with a body") }
            return claimed
        }
        guard claimed.lowercased() == actual else { throw EC2Error.signatureDoesNotMatch("x-amz-content-sha256 is not the SHA-256 of the body") }
        return claimed
    }

    struct SignatureFields {
        var credential: String
        var signedHeaders: String
        var signature: String
        var fromQuery: Bool
        var expires: Int?
    }

    /// `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
    static func headerFields(_ header: String) throws(EC2Error) -> SignatureFields {
        let trimmedHeader = trimmed(header)
        guard trimmedHeader.hasPrefix(algorithm + " ") else {
            throw EC2Error.authFailure("Authorization must use \(algorithm) (AWS Signature Version 4)")
        }
        var parts: [String: String] = [:]
        for piece in trimmedHeader.dropFirst(algorithm.count + 1).split(separator: ",") {
            let item = trimmed(String(piece))
            guard let equals = item.firstIndex(of: "=") else { throw EC2Error.authFailure("Authorization part '\(item.prefix(64))' is not NAME=VALUE") }
            let name = String(item[..<equals])
            guard parts[name] == nil else { throw EC2Error.authFailure("Authorization names \(name.prefix(32)) twice") }
            parts[name] = String(item[item.index(after: equals)...])
        }
        guard let credential = parts["Credential"], let signedHeaders = parts["SignedHeaders"], let signature = parts["Signature"] else {
            throw EC2Error.authFailure("Authorization needs Credential, SignedHeaders and Signature")
        }
        return SignatureFields(credential: credential, signedHeaders: signedHeaders, signature: signature, fromQuery: false)
    }

    /// X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders, X-Amz-Signature.
    static func queryFields(_ pairs: [(String, String)]) throws(EC2Error) -> SignatureFields {
        func value(_ name: String) throws(EC2Error) -> String {
            let found = pairs.filter { $0.0 == name }
            guard found.count == 1 else { throw EC2Error.authFailure(found.isEmpty ? "presigned request without \(name)" : "\(name) given twice") }
            return found[0].1
        }
        guard try value("X-Amz-Algorithm") == algorithm else { throw EC2Error.authFailure("X-Amz-Algorithm must be \(algorithm)") }
        let expiresText = try value("X-Amz-Expires")
        guard let expires = Int(expiresText), (1...604_800).contains(expires) else {
            throw EC2Error.authFailure("X-Amz-Expires must be 1-604800 seconds (got '\(expiresText.prefix(16))')")
        }
        _ = try value("X-Amz-Date")
        return SignatureFields(credential: try value("X-Amz-Credential"), signedHeaders: try value("X-Amz-SignedHeaders"),
                               signature: try value("X-Amz-Signature"), fromQuery: true, expires: expires)
    }

    /// The path encoded once more (every service but S3 signs the doubly encoded path); "" is "/".
    static func canonicalURI(_ path: String) -> String {
        path.isEmpty ? "/" : QueryParameters.uriEncode(path, keepSlash: true)
    }

    /// A header value as signed: trimmed, runs of spaces made one.
    static func trimmed(_ value: String) -> String {
        var out = ""
        var space = false
        for character in value {
            if character == " " || character == "\t" { space = !out.isEmpty; continue }
            if space { out.append(" "); space = false }
            out.append(character)
        }
        return out
    }

    public static func signingKey(secret: String, date: String, region: String, service: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key)))
        }
        let dateKey = hmac(SymmetricKey(data: Array(("AWS4" + secret).utf8)), date)
        return hmac(hmac(hmac(dateKey, region), service), "aws4_request")
    }

    /// Signs as a client would (for tests and the benchmark's own client): the Authorization header's value.
    public static func authorization(accessKey: String, secret: String, region: String, service: String, date: String,
                                     method: String, path: String, query: String, headers: [(String, String)], body: [UInt8]) -> String {
        let signed = Array(Set(headers.map { $0.0.lowercased() })).sorted()
        let day = String(date.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = stringToSign(method: method, path: path, query: (try? QueryParameters.parse(query, plusIsSpace: false)) ?? [],
                                        headers: headers, signed: signed, payloadHash: hex(SHA256.hash(data: body)), date: date, scope: scope)
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8),
                                                            using: signingKey(secret: secret, date: day, region: region, service: service)))
        return "\(algorithm) Credential=\(accessKey)/\(scope), SignedHeaders=\(signed.joined(separator: ";")), Signature=\(signature)"
    }

    /// The string a SigV4 signature is the HMAC of, from the canonical request exactly as AWS defines it: the
    /// method, the path encoded once more, the query pairs encoded and sorted, each signed header (lower case,
    /// values trimmed, repeats joined with commas), the signed header names, the payload's hash. The one
    /// definition, used by the verifier and by `authorization` (the tests' and the benchmark's signer).
    static func stringToSign(method: String, path: String, query: [(String, String)], headers: [(String, String)], signed: [String],
                             payloadHash: String, date: String, scope: String) -> String {
        let canonicalQuery = query.map { (QueryParameters.uriEncode($0.0), QueryParameters.uriEncode($0.1)) }
            .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        let canonicalHeaders = signed.map { name in
            name + ":" + headers.filter { $0.0.lowercased() == name }.map { trimmed($0.1) }.joined(separator: ",") + "\n"
        }.joined()
        let canonicalRequest = [method, canonicalURI(path), canonicalQuery, canonicalHeaders, signed.joined(separator: ";"),
                                payloadHash].joined(separator: "\n")
        return [algorithm, date, scope, hex(SHA256.hash(data: Array(canonicalRequest.utf8)))].joined(separator: "\n")
    }

    /// `20150830T123600Z` as seconds since 1970, or nil.
    public static func parseAmzDate(_ text: String) -> Double? {
        let scalars = Array(text.utf8)
        guard scalars.count == 16, scalars[8] == UInt8(ascii: "T"), scalars[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let byte = scalars[index]
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Double(days * 86_400 + hour * 3600 + minute * 60 + second)
    }

    /// Seconds since 1970 as `20150830T123600Z`.
    public static func amzDate(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.down))
        let days = total >= 0 ? total / 86_400 : (total - 86_399) / 86_400
        let rest = total - days * 86_400
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)\(two(month))\(two(day))T\(two(rest / 3600))\(two(rest / 60 % 60))\(two(rest % 60))Z"
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".unicodeScalars)
        var out = ""
        for byte in bytes {
            out.unicodeScalars.append(digits[Int(byte >> 4)])
            out.unicodeScalars.append(digits[Int(byte & 15)])
        }
        return out
    }

    static func hex(_ digest: SHA256.Digest) -> String { hex(Array(digest)) }
    static func hex(_ code: HashedAuthenticationCode<SHA256>) -> String { hex(Array(code)) }

    static func unhex(_ text: String) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count / 2)
        var index = 0
        while index < bytes.count {
            guard let high = QueryParameters.hexValue(bytes[index]), let low = QueryParameters.hexValue(bytes[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
