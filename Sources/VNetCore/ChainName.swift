/// iptables chain names for security groups.
///
/// Eucalyptus named a group's chain `<user>-<group>`; operators know `iptables -L admin-default`. This keeps
/// that shape behind a `vn-` prefix (so the chains this project owns are recognisable and never collide with
/// an operator's) when it fits iptables' 28-character limit and uses only plain characters. Otherwise the
/// name is shortened and a hash of the full `user/group` is appended, as Eucalyptus 3 did, so it stays unique
/// and stable across restarts.
public enum ChainName {
    public static let prefix = "vn-"
    /// The chains every front end has, jumped to from the built-in chains.
    public static let forward = "VNET-FORWARD"
    public static let preRouting = "VNET-PREROUTING"
    public static let output = "VNET-OUTPUT"
    public static let postRouting = "VNET-POSTROUTING"

    /// Whether a chain is this project's (the fixed VNET-* chains or a group's).
    public static func isOurs(_ chain: String) -> Bool { chain.hasPrefix("VNET-") || chain.hasPrefix(prefix) }

    /// Whether an iptables-save rule's tokens jump (or go) to one of this project's chains.
    public static func jumpsToOurs(_ tokens: [String]) -> Bool {
        zip(tokens, tokens.dropFirst()).contains { ($0 == "-j" || $0 == "-g" || $0 == "--jump" || $0 == "--goto") && isOurs($1) }
    }

    public static func forGroup(_ group: GroupID) -> String {
        let plain = "\(prefix)\(group.user)-\(group.name)"
        let simple = group.name.unicodeScalars.allSatisfy(NameRules.isSafeNameScalar)
            && group.user.unicodeScalars.allSatisfy(NameRules.isSafeNameScalar)
            && !group.user.contains("-")
        if simple, plain.utf8.count <= NameRules.maxChainNameLength { return plain }
        let hash = String(FNV1a.hash(group.description.utf8), radix: 16)
        let digest = String(repeating: "0", count: 16 - hash.count) + hash
        let user = String(String.UnicodeScalarView(group.user.unicodeScalars.filter(NameRules.isSafeNameScalar)).prefix(10))
        return "\(prefix)\(user)~\(digest.prefix(12))"
    }
}
