/// EC2's response documents: `<ActionResponse xmlns="http://ec2.amazonaws.com/doc/VERSION/">` with a
/// `requestId`, lists as `<set><item>...</item></set>`, and errors as
/// `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`. Written by hand:
/// the documents are small and their shapes fixed, and every text is escaped here.
public struct EC2XML: Sendable {
    public private(set) var text = ""
    private var open: [String] = []

    public init() {}

    public mutating func start(_ name: String, attributes: [(String, String)] = []) {
        text += "<" + name
        for (key, value) in attributes { text += " \(key)=\"\(Self.escape(value))\"" }
        text += ">"
        open.append(name)
    }

    public mutating func end() {
        let name = open.removeLast()
        text += "</\(name)>"
    }

    public mutating func element(_ name: String, _ value: String) {
        text += "<\(name)>\(Self.escape(value))</\(name)>"
    }

    public mutating func element(_ name: String, _ value: Int) { element(name, String(value)) }
    public mutating func element(_ name: String, _ value: Bool) { element(name, value ? "true" : "false") }

    /// `<name>` with an `<item>` per element.
    public mutating func items<T>(_ name: String, _ elements: [T], _ body: (inout EC2XML, T) -> Void) {
        start(name)
        for element in elements {
            start("item")
            body(&self, element)
            end()
        }
        end()
    }

    public static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // XML 1.0 cannot carry other control characters at all, escaped or not.
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0xfffe || scalar.value == 0xffff { out += "\u{fffd}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    public static let declaration = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

    /// A whole success document.
    public static func response(action: String, version: String, requestID: String, _ body: (inout EC2XML) -> Void) -> String {
        var xml = EC2XML()
        xml.start("\(action)Response", attributes: [("xmlns", "http://ec2.amazonaws.com/doc/\(version)/")])
        xml.element("requestId", requestID)
        body(&xml)
        xml.end()
        return declaration + xml.text
    }

    /// A whole error document.
    public static func error(_ error: EC2Error, requestID: String) -> String {
        var xml = EC2XML()
        xml.start("Response")
        xml.start("Errors")
        xml.start("Error")
        xml.element("Code", error.code)
        xml.element("Message", error.message)
        xml.end()
        xml.end()
        xml.element("RequestID", requestID)
        xml.end()
        return declaration + xml.text
    }
}
