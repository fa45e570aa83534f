/// The words of a diagnosis, the same from `vnetctl diagnose` (the fleet) and `vnet-agent diagnose` (one host):
/// a headline, then what looks wrong, host by host, or that nothing does. Text that came from elsewhere (the
/// bus, a host's files) is shown without control characters and named in archives by safe file names.
public enum DiagnosisSummary {
    public static func text(headline: String, findings: [(host: String, text: String)]) -> String {
        var out = headline + "\n"
        if findings.isEmpty { return out + "nothing looks wrong\n" }
        out += "what looks wrong:\n"
        for finding in findings { out += "  \(printable(finding.host)): \(printable(finding.text))\n" }
        return out
    }

    /// As a terminal may show it: control characters (escape sequences) become "?".
    public static func printable(_ text: String) -> String {
        String(text.prefix(2000).unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : Character($0) })
    }

    /// One path component of an archive: no directories, no dot files, at most 64 characters.
    public static func safeName(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        var safe = String(name.prefix(64).map { allowed.contains($0) ? $0 : "_" })
        while safe.hasPrefix(".") { safe = "_" + safe.dropFirst() }
        return safe.isEmpty ? "_" : safe
    }
}
