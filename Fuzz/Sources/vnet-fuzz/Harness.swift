import Foundation
import VNetFuzzTargets

/// libFuzzer's entry point. The target is named by VNET_FUZZ_TARGET (conf, envelope, dhcp, probe, preload),
/// read once; the first input byte picks the variant (a config's role, a probe's stripped tag).
let target: String = {
    let name = ProcessInfo.processInfo.environment["VNET_FUZZ_TARGET"] ?? ""
    guard FuzzTargets.names.contains(name) else {
        FileHandle.standardError.write(Data("vnet-fuzz: set VNET_FUZZ_TARGET to one of \(FuzzTargets.names.joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return name
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    FuzzTargets.feed(target, Array(bytes.dropFirst()), variant: Int(bytes.first ?? 0))
    return 0
}
