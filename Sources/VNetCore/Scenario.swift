#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A cluster described as requests, for `vnetctl plan`: nodes, groups with rules, instances and public-IP
/// associations. `ScenarioLoader` runs the requests through the `Allocator` in file order.
///
/// Decoding is strict: a field this format does not have is an error naming it, because a misspelt field
/// silently ignored would make a dry run lie.
public struct Scenario: Sendable, Decodable {
    public struct Node: Sendable, Decodable {
        public var name: String
        public var interface: String?
        public var bridge: String?
    }

    public struct Rule: Sendable, Decodable {
        public var `protocol`: String
        public var ports: String?
        public var icmpType: Int?
        public var icmpCode: Int?
        public var source: String?
        public var sourceGroup: String?

        public init(protocol: String, ports: String? = nil, icmpType: Int? = nil, icmpCode: Int? = nil,
                    source: String? = nil, sourceGroup: String? = nil) {
            self.protocol = `protocol`; self.ports = ports; self.icmpType = icmpType; self.icmpCode = icmpCode
            self.source = source; self.sourceGroup = sourceGroup
        }
    }

    public struct Group: Sendable, Decodable {
        public var user: String
        public var name: String
        public var rules: [Rule]?
    }

    public struct Instance: Sendable, Decodable {
        public var id: String
        public var node: String
        public var group: String?
        public var vif: String?
    }

    public struct PublicIP: Sendable, Decodable {
        public var address: String
        public var instance: String?
    }

    public var frontend: String?
    public var nodes: [Node]
    public var groups: [Group]?
    public var instances: [Instance]?
    public var publicIPs: [PublicIP]?

    /// The fields each object of the format may have, by its path (`[]` for "every element").
    static let schema: [String: Set<String>] = [
        "": ["frontend", "nodes", "groups", "instances", "publicIPs"],
        "nodes[]": ["name", "interface", "bridge"],
        "groups[]": ["user", "name", "rules"],
        "groups[].rules[]": ["protocol", "ports", "icmpType", "icmpCode", "source", "sourceGroup"],
        "instances[]": ["id", "node", "group", "vif"],
        "publicIPs[]": ["address", "instance"],
    ]

    /// Decodes JSON, turning decoding failures into errors that name the field (`instances[2].node`).
    public static func decode(_ data: [UInt8]) throws(ClusterError) -> Scenario {
        do {
            let decoder = JSONDecoder()
            let tree = try decoder.decode(JSONValue.self, from: Data(data))
            try rejectUnknownFields(tree, schemaPath: "", path: "")
            return try decoder.decode(Scenario.self, from: Data(data))
        } catch let error as ClusterError {
            throw error
        } catch let error as DecodingError {
            throw ClusterError(decodingError: error)
        } catch {
            throw ClusterError("not a valid scenario: \(error)")
        }
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

/// Any JSON value, decoded only to walk the object keys before the typed decoding.
enum JSONValue: Decodable {
    case object([String: JSONValue])
    case array([JSONValue])
    case scalar

    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var members: [String: JSONValue] = [:]
            for key in object.allKeys { members[key.stringValue] = try object.decode(JSONValue.self, forKey: key) }
            self = .object(members)
        } else if var array = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            while !array.isAtEnd { elements.append(try array.decode(JSONValue.self)) }
            self = .array(elements)
        } else {
            self = .scalar
        }
    }
}

/// Refuses a field the format does not have, naming it (`instances[2].grup`): a misspelt field silently
/// ignored would make a dry run lie.
private func rejectUnknownFields(_ value: JSONValue, schemaPath: String, path: String) throws(ClusterError) {
    switch value {
    case .object(let members):
        guard let known = Scenario.schema[schemaPath] else { return }
        for name in members.keys.sorted() {
            let childPath = path.isEmpty ? name : "\(path).\(name)"
            guard known.contains(name) else {
                throw ClusterError(field: childPath, "unknown field; this object has \(known.sorted().joined(separator: ", "))")
            }
            try rejectUnknownFields(members[name]!, schemaPath: schemaPath.isEmpty ? name : "\(schemaPath).\(name)", path: childPath)
        }
    case .array(let elements):
        for (index, element) in elements.enumerated() {
            try rejectUnknownFields(element, schemaPath: schemaPath + "[]", path: "\(path)[\(index)]")
        }
    case .scalar:
        return
    }
}

extension ClusterError {
    /// Turns a DecodingError into "path: what is wrong", the path written as `instances[2].node`.
    init(decodingError: DecodingError) {
        func path(_ keys: [any CodingKey]) -> String? {
            var text = ""
            for key in keys {
                if let index = key.intValue { text += "[\(index)]" } else { text += text.isEmpty ? key.stringValue : ".\(key.stringValue)" }
            }
            return text.isEmpty ? nil : text
        }
        switch decodingError {
        case .keyNotFound(let key, let context):
            self.init(field: path(context.codingPath + [key]), "required field is missing")
        case .typeMismatch(let type, let context):
            self.init(field: path(context.codingPath), "expected \(jsonTypeName(type))")
        case .valueNotFound(let type, let context):
            self.init(field: path(context.codingPath), "expected \(jsonTypeName(type)), found null")
        case .dataCorrupted(let context):
            let message = context.codingPath.isEmpty ? "not valid JSON" : context.debugDescription
            self.init(field: path(context.codingPath), message)
        @unknown default:
            self.init("not a valid scenario")
        }
    }
}

private func jsonTypeName(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: "a string"
    case is Int.Type: "a whole number"
    case is Bool.Type: "true or false"
    default: String(describing: type).hasPrefix("Array") ? "a list" : "an object"
    }
}
