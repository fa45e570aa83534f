@testable import VNetCore

/// Builds a config text from key/value pairs, one per line in the given order (line 1 is the first pair).
func conf(_ pairs: [(String, String)]) -> String {
    pairs.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: "\n") + "\n"
}

let managedFrontend: [(String, String)] = [
    ("VNET_MODE", "MANAGED"),
    ("VNET_INTERFACE", "eth0"),
    ("VNET_DHCPDAEMON", "/usr/sbin/dhcpd"),
    ("VNET_SUBNET", "10.20.0.0"),
    ("VNET_NETMASK", "255.255.0.0"),
    ("VNET_DNS", "192.0.2.53"),
    ("VNET_ADDRSPERNET", "64"),
    ("VNET_PUBLICIPS", "203.0.113.10-203.0.113.19"),
]

let staticFrontend: [(String, String)] = [
    ("VNET_MODE", "STATIC"),
    ("VNET_INTERFACE", "eth0"),
    ("VNET_DHCPDAEMON", "/usr/sbin/dhcpd"),
    ("VNET_SUBNET", "192.168.1.0"),
    ("VNET_NETMASK", "255.255.255.0"),
    ("VNET_BROADCAST", "192.168.1.255"),
    ("VNET_ROUTER", "192.168.1.1"),
    ("VNET_DNS", "192.168.1.2"),
    ("VNET_MACMAP", "aa:dd:11:ce:ff:ed=192.168.1.3 aa:dd:11:ce:ff:ee=192.168.1.4"),
]

/// `base` with `key` set to `value` (replaced in place, or appended as the last line).
func with(_ base: [(String, String)], _ key: String, _ value: String) -> [(String, String)] {
    var pairs = base
    if let index = pairs.firstIndex(where: { $0.0 == key }) { pairs[index].1 = value } else { pairs.append((key, value)) }
    return pairs
}

func without(_ base: [(String, String)], _ key: String) -> [(String, String)] {
    base.filter { $0.0 != key }
}

func line(of key: String, in pairs: [(String, String)]) -> Int {
    (pairs.firstIndex { $0.0 == key } ?? -1) + 1
}

func validConfig(_ pairs: [(String, String)], role: HostRole = .frontend) -> VNetConfig {
    let check = ConfigValidator.validate(text: conf(pairs), role: role)
    guard let config = check.config else {
        fatalError("test config is invalid: \(check.diagnostics)")
    }
    return config
}

