/// Renders `DHCPDConfig` as ISC dhcpd.conf text in the shape Eucalyptus 3.4.2 wrote, so that an operator who
/// knows euca-dhcp.conf recognises it: global lease times, `subnet` stanzas with mask, broadcast, DNS and
/// router, and one `host node-IP` entry per instance with its fixed address.
///
/// With a `DHCPDControl` the config also opens dhcpd's OMAPI port under the agent's key, through which host
/// entries change without a restart (`DHCPDManager`). The file is then the whole state: what a restarted
/// dhcpd serves is what the running one was told.
public enum DHCPDConfRenderer {
    /// Hosts are rendered as bytes: a 100 000-host config is 7 MB, and building it as bytes is several times
    /// faster than appending strings (it is on the path of an instance's start).
    public static func render(_ config: DHCPDConfig, control: DHCPDControl? = nil) -> String {
        var out = Array(head(config, control: control).utf8)
        out.reserveCapacity(out.count + config.hosts.count * 80)
        if !config.hosts.isEmpty { out.append(UInt8(ascii: "\n")) }
        for host in config.hosts { appendDeclaration(host, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Everything before the host declarations: globals, the OMAPI key and port, the subnets. Two configs with
    /// the same head differ only in hosts, which OMAPI can change in the running daemon.
    public static func head(_ config: DHCPDConfig, control: DHCPDControl?) -> String {
        var out = ""
        out.reserveCapacity(300 + config.subnets.count * 220)
        out += "# dhcpd.conf written by vnet; do not edit: it is rewritten on every change\n"
        out += "default-lease-time \(config.leaseSeconds);\n"
        out += "max-lease-time \(config.leaseSeconds);\n"
        out += "ddns-update-style none;\n"
        out += "authoritative;\n\n"
        if let control {
            out += "key " + DHCPDControl.keyName + " {\n  algorithm " + DHCPDControl.algorithm + ";\n  secret \"" + control.secretBase64 + "\";\n}\n"
            out += "omapi-port \(control.port);\nomapi-key " + DHCPDControl.keyName + ";\n\n"
        }
        let indent = config.sharedNetwork ? "  " : ""
        if config.sharedNetwork { out += "shared-network euca {\n" }
        for subnet in config.subnets {
            let mask = subnet.network.netmask.description
            out += indent + "subnet " + subnet.network.address.description + " netmask " + mask + " {\n"
            out += indent + "  option subnet-mask " + mask + ";\n"
            out += indent + "  option broadcast-address " + subnet.broadcast.description + ";\n"
            if !subnet.dns.isEmpty {
                out += indent + "  option domain-name-servers " + subnet.dns.map(\.description).joined(separator: ", ") + ";\n"
            }
            if let router = subnet.router { out += indent + "  option routers " + router.description + ";\n" }
            out += indent + "}\n"
        }
        if config.sharedNetwork { out += "}\n" }
        return out
    }

    /// `text` with the value of every `secret "...";` statement replaced: what a diagnostic bundle, which
    /// operators hand to others, keeps of dhcpd.conf (the OMAPI key would let its holder change dhcpd's hosts).
    public static func redactingSecrets(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.trimmingPrefix(while: { $0 == " " || $0 == "\t" }).hasPrefix("secret ")
                ? line.prefix { $0 == " " || $0 == "\t" } + "secret \"(removed from this copy)\";" : String(line)
        }.joined(separator: "\n")
    }

    public static func declaration(_ host: DHCPDConfig.Host) -> String {
        var out: [UInt8] = []
        appendDeclaration(host, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static let hostOpen = Array(("host " + DHCPDConfig.Host.declarationPrefix).utf8), hardware = Array(" {\n  hardware ethernet ".utf8)
    private static let fixed = Array(";\n  fixed-address ".utf8), close = Array(";\n}\n".utf8)

    /// `host node-ADDRESS { hardware ethernet MAC; fixed-address ADDRESS; }` (the name is `declarationName`,
    /// written from its parts to spare a string per host).
    static func appendDeclaration(_ host: DHCPDConfig.Host, to out: inout [UInt8]) {
        out += hostOpen
        host.address.append(to: &out)
        out += hardware
        host.mac.append(to: &out)
        out += fixed
        host.address.append(to: &out)
        out += close
    }
}

/// dhcpd's OMAPI port and the key that signs every request on it (HMAC-SHA256; the agent makes the secret).
/// dhcpd listens for OMAPI on every address of its namespace (it has no option for the address: omapip's
/// `omapi_listen` binds INADDR_ANY), so the key is what keeps others out; `DHCPDManager` says so.
public struct DHCPDControl: Sendable, Equatable {
    public static let keyName = "vnet-omapi"
    public static let algorithm = "hmac-sha256"
    /// The algorithm as OMAPI names it when the authenticator is opened (dhcpd adds the suffix to the
    /// config's name and compares the two without case).
    public static let wireAlgorithm = "hmac-sha256.SIG-ALG.REG.INT."
    public var port: UInt16
    public var secret: [UInt8]
    public var secretBase64: String
    public init(port: UInt16, secret: [UInt8]) {
        self.port = port; self.secret = secret; self.secretBase64 = Base64.encode(secret)
    }
}

/// RFC 4648 base64, for the key's secret in dhcpd.conf (VNetCore stays without Foundation).
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        for start in stride(from: 0, to: bytes.count, by: 3) {
            let chunk = bytes[start..<min(start + 3, bytes.count)]
            var word = 0
            for (index, byte) in chunk.enumerated() { word |= Int(byte) << (16 - 8 * index) }
            for index in 0..<4 {
                out.append(index <= chunk.count ? alphabet[(word >> (18 - 6 * index)) & 63] : UInt8(ascii: "="))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
