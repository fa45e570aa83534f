import Crypto
import VNetCore

/// EC2's ids for what vnet names otherwise: `sg-` for a group (user and name), `eipalloc-` and `eipassoc-`
/// for a public address and its association. They are derived, not stored: the gateway keeps no state, a
/// group's id is the same from every gateway and after every restart, and a deleted group made again under
/// the same name gets the same id (EC2 would give a new one; the README says so).
public enum EC2Identifiers {
    /// `sg-` and 17 hex digits of SHA-256 over the owner and name.
    public static func groupID(_ group: GroupID) -> String {
        let digest = SHA256.hash(data: Array("vnet-group\u{0}\(group.user)\u{0}\(group.name)".utf8))
        return "sg-" + String(SigV4Verifier.hex(Array(digest)).prefix(17))
    }

    public static func isGroupID(_ text: String) -> Bool {
        text.hasPrefix("sg-") && (4...20).contains(text.utf8.count) && text.dropFirst(3).allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    public static func allocationID(_ address: IPv4Address) -> String { "eipalloc-" + hex8(address.value) }
    public static func associationID(_ address: IPv4Address) -> String { "eipassoc-" + hex8(address.value) }

    /// The address an `eipalloc-`/`eipassoc-` id names, or nil when the text is not such an id.
    public static func address(fromID text: String, prefix: String) -> IPv4Address? {
        guard text.hasPrefix(prefix + "-") else { return nil }
        let digits = text.dropFirst(prefix.count + 1)
        guard digits.count == 8, digits.allSatisfy(\.isHexDigit), let value = UInt32(digits, radix: 16) else { return nil }
        return IPv4Address(value)
    }

    static func hex8(_ value: UInt32) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: 8 - text.count) + text
    }
}
