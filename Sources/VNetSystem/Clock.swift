import Foundation

/// Seconds on a monotonic clock, for heartbeats and timeouts (wall-clock jumps must not mark nodes DOWN).
public func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Nanoseconds on the same clock (CLOCK_MONOTONIC is one clock for every namespace of a machine), for
/// round-trip times and instants compared across processes.
public func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
