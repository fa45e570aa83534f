import VNetCore

/// Which nodes are alive, from the time of their last heartbeat. A value type: the event loop feeds it times
/// and asks it for states; tests feed it any times they like.
///
/// A node is UP while its heartbeats come, SUSPECT after `suspectAfter` missed intervals, DOWN after
/// `downAfter`, and NEW until it has been heard from at all.
public struct Liveness: Sendable {
    public var interval: Double
    public var suspectAfter: Double
    public var downAfter: Double
    private var lastHeard: [String: Double] = [:]
    private var reported: [String: HostLiveness] = [:]

    public init(interval: Double, suspectAfter: Double = 2, downAfter: Double = 3) {
        self.interval = interval
        self.suspectAfter = suspectAfter
        self.downAfter = downAfter
    }

    public mutating func heard(_ node: String, at time: Double) { lastHeard[node] = time }

    public func state(of node: String, at time: Double) -> HostLiveness {
        guard let last = lastHeard[node] else { return .new }
        let missed = (time - last) / interval
        return missed >= downAfter ? .down : missed >= suspectAfter ? .suspect : .up
    }

    public func age(of node: String, at time: Double) -> Double? { lastHeard[node].map { time - $0 } }

    /// Nodes whose state changed since the last call, with the new state (for logging transitions).
    public mutating func transitions(at time: Double, nodes: [String]) -> [(String, HostLiveness)] {
        var changes: [(String, HostLiveness)] = []
        for node in nodes {
            let now = state(of: node, at: time)
            if reported[node] != now {
                if reported[node] != nil || now != .new { changes.append((node, now)) }
                reported[node] = now
            }
        }
        return changes
    }
}
