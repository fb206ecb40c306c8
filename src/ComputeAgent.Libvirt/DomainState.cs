namespace ComputeAgent.Libvirt;

/// <summary>virDomainState.</summary>
public enum DomainState
{
    NoState = 0,
    Running = 1,
    Blocked = 2,
    Paused = 3,
    Shutdown = 4,
    Shutoff = 5,
    Crashed = 6,
    PmSuspended = 7,
}

/// <summary>virDomainShutoffReason: why a domain is shut off (Saved = a managed-save image exists).</summary>
public enum DomainShutoffReason
{
    Unknown = 0,
    Shutdown = 1,
    Destroyed = 2,
    Crashed = 3,
    Migrated = 4,
    Saved = 5,
    Failed = 6,
    FromSnapshot = 7,
    Daemon = 8,
}

/// <summary>virDomainPausedReason: why a domain is paused.</summary>
public enum DomainPausedReason
{
    Unknown = 0,
    User = 1,
    Migration = 2,
    Save = 3,
    Dump = 4,
    IoError = 5,
    Watchdog = 6,
    FromSnapshot = 7,
    ShuttingDown = 8,
    Snapshot = 9,
    Crashed = 10,
    StartingUp = 11,
    PostCopy = 12,
    PostCopyFailed = 13,
}

/// <summary>A domain's state and libvirt's reason code for it (the reason's meaning depends on the state).</summary>
public readonly record struct DomainStateInfo(DomainState State, int Reason)
{
    public DomainShutoffReason ShutoffReason => State == DomainState.Shutoff ? (DomainShutoffReason)Reason : DomainShutoffReason.Unknown;

    public DomainPausedReason PausedReason => State == DomainState.Paused ? (DomainPausedReason)Reason : DomainPausedReason.Unknown;

    public override string ToString() => State switch
    {
        DomainState.Shutoff => $"{State} ({ShutoffReason})",
        DomainState.Paused => $"{State} ({PausedReason})",
        _ => $"{State} (reason {Reason})",
    };
}

/// <summary>virDomainGetInfo's answer; memory in KiB, CPU time in nanoseconds.</summary>
public readonly record struct DomainInfo(DomainState State, ulong MaxMemoryKiB, ulong MemoryKiB, int VirtualCpus, ulong CpuTimeNs);

/// <summary>virNodeGetInfo's answer; memory in KiB.</summary>
public readonly record struct NodeInfo(string CpuModel, ulong MemoryKiB, int Cpus, int MHz, int NumaNodes, int Sockets, int Cores, int Threads);

public readonly record struct DomainBlockStats(long ReadRequests, long ReadBytes, long WriteRequests, long WriteBytes, long Errors);

public readonly record struct DomainInterfaceStats(long RxBytes, long RxPackets, long RxErrors, long RxDrops, long TxBytes, long TxPackets, long TxErrors, long TxDrops);

/// <summary>A block job's progress; Type is libvirt's virDomainBlockJobType (1 pull, 2 copy, 3 commit, 4 active commit, 5 backup).</summary>
public readonly record struct BlockJobInfo(int Type, ulong BandwidthMiBps, ulong Current, ulong End);

/// <summary>One domain's answer to virConnectGetAllDomainStats; values are int, uint, long, ulong, double, bool or string.</summary>
public sealed record DomainStatsRecord(Guid Uuid, string Name, IReadOnlyDictionary<string, object> Values)
{
    /// <summary>state.state and state.reason, present when Domain state statistics were asked for.</summary>
    public DomainStateInfo? State => Values.TryGetValue("state.state", out var state) && Values.TryGetValue("state.reason", out var reason)
        ? new DomainStateInfo((DomainState)Convert.ToInt32(state, System.Globalization.CultureInfo.InvariantCulture), Convert.ToInt32(reason, System.Globalization.CultureInfo.InvariantCulture))
        : null;
}
