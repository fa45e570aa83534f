import VNetBus

/// How a coordinator runs; built by `vnet-coordinator` from its flags and eucalyptus.conf.
public struct CoordinatorOptions: Sendable {
    public var clusterID = "vnet"
    public var stateDirectory: String
    /// Where to bind; port 0 picks free ports and `endpoints.json` says which.
    public var listen: BusEndpoints
    /// nil: plain text (`--insecure`).
    public var keysDirectory: String?
    /// The front end's host name: an agent registering with it gets the front end's desired state.
    public var frontendName = "frontend"
    public var heartbeatInterval = 1.0
    public var suspectAfter = 2.0
    public var downAfter = 3.0
    /// Control requests (and registrations) taken into one commit at most: a burst of 1000 run-instance
    /// requests is one commit, not several in a row each replanning the cluster (BENCHMARKS.md, the bus).
    public var maxBatch = 4096
    /// Whether the coordinator keeps metrics (it is served them with `--metrics`).
    public var metrics = false
    /// `--watch-vlans`: keep checking every node's path to the front end on each VID it carries (VLANWatch),
    /// within `watchFramesPerSecond` for the whole cluster, a path's state changing after `watchHysteresis`
    /// consecutive results the other way.
    public var watchVLANs = false
    public var watchFramesPerSecond = 500.0
    public var watchHysteresis = 3
    /// The host clients and standbys are told to reach this coordinator at (`--advertise`); nil: the host it
    /// listens on (127.0.0.1 for a wildcard, which only suits one host).
    public var advertise: String?

    public init(stateDirectory: String, listen: BusEndpoints) {
        self.stateDirectory = stateDirectory
        self.listen = listen
    }
}
