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
        static let fields: Set<String> = ["name", "interface", "bridge"]
    }

    public struct Rule: Sendable, Decodable {
        public var `protocol`: String
        public var ports: String?
        public var icmpType: Int?
        public var icmpCode: Int?
        public var source: String?
        public var sourceGroup: String?
        static let fields: Set<String> = ["protocol", "ports", "icmpType", "icmpCode", "source", "sourceGroup"]
    }

    public struct Group: Sendable, Decodable {
        public var user: String
        public var name: String
        public var rules: [Rule]?
        static let fields: Set<String> = ["user", "name", "rules"]
    }

    public struct Instance: Sendable, Decodable {
        public var id: String
        public var node: String
        public var group: String?
        public var vif: String?
        static let fields: Set<String> = ["id", "node", "group", "vif"]
    }

    public struct PublicIP: Sendable, Decodable {
        public var address: String
        public var instance: String?
        static let fields: Set<String> = ["address", "instance"]
    }

    public var frontend: String?
    public var nodes: [Node]
    public var groups: [Group]?
    public var instances: [Instance]?
    public var publicIPs: [PublicIP]?
    static let fields: Set<String> = ["frontend", "nodes", "groups", "instances", "publicIPs"]

    /// Decodes JSON, turning decoding failures into errors that name the field (`instances[2].node`).
    public static func decode(_ data: [UInt8]) throws(ClusterError) -> Scenario {
        do {
            return try JSONDecoder().decode(Scenario.self, from: Data(data))
        } catch let error as DecodingError {
            throw ClusterError(decodingError: error)
        } catch {
            throw ClusterError("not a valid scenario: \(error)")
        }
    }
}

extension Scenario {
    public init(from decoder: any Decoder) throws {
        try rejectUnknownFields(decoder, Scenario.fields)
        let c = try decoder.container(keyedBy: AnyKey.self)
        frontend = try c.decodeIfPresent(String.self, forKey: AnyKey("frontend"))
        nodes = try c.decode([Node].self, forKey: AnyKey("nodes"))
        groups = try c.decodeIfPresent([Group].self, forKey: AnyKey("groups"))
        instances = try c.decodeIfPresent([Instance].self, forKey: AnyKey("instances"))
        publicIPs = try c.decodeIfPresent([PublicIP].self, forKey: AnyKey("publicIPs"))
    }
}

extension Scenario.Node {
    public init(from decoder: any Decoder) throws {
        try rejectUnknownFields(decoder, Self.fields)
        let c = try decoder.container(keyedBy: AnyKey.self)
        name = try c.decode(String.self, forKey: AnyKey("name"))
        interface = try c.decodeIfPresent(String.self, forKey: AnyKey("interface"))
        bridge = try c.decodeIfPresent(String.self, forKey: AnyKey("bridge"))
    }
}

extension Scenario.Rule {
    public init(from decoder: any Decoder) throws {
        try rejectUnknownFields(decoder, Self.fields)
        let c = try decoder.container(keyedBy: AnyKey.self)
        `protocol` = try c.decode(String.self, forKey: AnyKey("protocol"))
        ports = try c.decodeIfPresent(String.self, forKey: AnyKey("ports"))
        icmpType = try c.decodeIfPresent(Int.self, forKey: AnyKey("icmpType"))
        icmpCode = try c.decodeIfPresent(Int.self, forKey: AnyKey("icmpCode"))
        source = try c.decodeIfPresent(String.self, forKey: AnyKey("source"))
        sourceGroup = try c.decodeIfPresent(String.self, forKey: AnyKey("sourceGroup"))
    }
}

extension Scenario.Group {
    public init(from decoder: any Decoder) throws {
        try rejectUnknownFields(decoder, Self.fields)
        let c = try decoder.container(keyedBy: AnyKey.self)
        user = try c.decode(String.self, forKey: AnyKey("user"))
        name = try c.decode(String.self, forKey: AnyKey("name"))
        rules = try c.decodeIfPresent([Scenario.Rule].self, forKey: AnyKey("rules"))
    }
}

extension Scenario.Instance {
    public init(from decoder: any Decoder) throws {
        try rejectUnknownFields(decoder, Self.fields)
        let c = try decoder.container(keyedBy: AnyKey.self)
        id = try c.decode(String.self, forKey: AnyKey("id"))
        node = try c.decode(String.self, forKey: AnyKey("node"))
        group = try c.decodeIfPresent(String.self, forKey: AnyKey("group"))
        vif = try c.decodeIfPresent(String.self, forKey: AnyKey("vif"))
    }
}

extension Scenario.PublicIP {
    public init(from decoder: any Decoder) throws {
        try rejectUnknownFields(decoder, Self.fields)
        let c = try decoder.container(keyedBy: AnyKey.self)
        address = try c.decode(String.self, forKey: AnyKey("address"))
        instance = try c.decodeIfPresent(String.self, forKey: AnyKey("instance"))
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue); self.intValue = intValue }
}

private func rejectUnknownFields(_ decoder: any Decoder, _ known: Set<String>) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    if let unknown = container.allKeys.map(\.stringValue).filter({ !known.contains($0) }).sorted().first {
        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [AnyKey(unknown)],
            debugDescription: "unknown field; this object has \(known.sorted().joined(separator: ", "))"))
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
