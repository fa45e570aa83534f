import Foundation

/// Seconds on a monotonic clock, for heartbeats and timeouts (wall-clock jumps must not mark nodes DOWN).
public func monotonicSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}
