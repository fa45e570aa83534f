/// A refusal as EC2 words it: its error code, a message, and the HTTP status EC2 answers it with. Every
/// refusal of the gateway is one of these; nothing is changed when one is answered.
public struct EC2Error: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var status: Int

    public init(_ code: String, _ message: String, status: Int = 400) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "\(code): \(message)" }

    // Authentication (SigV4).
    public static func authFailure(_ message: String) -> EC2Error { EC2Error("AuthFailure", message, status: 401) }
    public static func signatureDoesNotMatch(_ message: String) -> EC2Error { EC2Error("SignatureDoesNotMatch", message, status: 403) }
    public static func requestExpired(_ message: String) -> EC2Error { EC2Error("RequestExpired", message) }

    // Parameters.
    public static func missing(_ name: String) -> EC2Error {
        EC2Error("MissingParameter", "The request must contain the parameter \(name)")
    }
    public static func invalid(_ name: String, _ why: String) -> EC2Error {
        EC2Error("InvalidParameterValue", "Value for parameter \(name) is invalid: \(why)")
    }
    public static func invalidCombination(_ why: String) -> EC2Error { EC2Error("InvalidParameterCombination", why) }
    public static func unknownParameter(_ name: String) -> EC2Error {
        EC2Error("UnknownParameter", "The parameter \(name) is not recognized")
    }

    // The service.
    public static func unavailable(_ why: String) -> EC2Error { EC2Error("Unavailable", why, status: 503) }
    public static func internalError(_ why: String) -> EC2Error { EC2Error("InternalError", why, status: 500) }
}
