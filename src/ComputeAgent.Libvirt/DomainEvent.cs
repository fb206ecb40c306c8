namespace ComputeAgent.Libvirt;

/// <summary>virDomainEventType: the lifecycle event's kind.</summary>
public enum DomainLifecycleEventType
{
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Suspended = 3,
    Resumed = 4,
    Stopped = 5,
    Shutdown = 6,
    PmSuspended = 7,
    Crashed = 8,
}

/// <summary>
/// A lifecycle event's type and detail in one value: (type &lt;&lt; 8) | detail, so a test or the
/// engine can name exactly what happened (StoppedSaved, SuspendedPaused, ShutdownGuest).
/// </summary>
public enum DomainLifecycleDetail
{
    DefinedAdded = (0 << 8) | 0,
    DefinedUpdated = (0 << 8) | 1,
    DefinedRenamed = (0 << 8) | 2,
    DefinedFromSnapshot = (0 << 8) | 3,
    UndefinedRemoved = (1 << 8) | 0,
    UndefinedRenamed = (1 << 8) | 1,
    StartedBooted = (2 << 8) | 0,
    StartedMigrated = (2 << 8) | 1,
    StartedRestored = (2 << 8) | 2,
    StartedFromSnapshot = (2 << 8) | 3,
    StartedWakeup = (2 << 8) | 4,
    SuspendedPaused = (3 << 8) | 0,
    SuspendedMigrated = (3 << 8) | 1,
    SuspendedIoError = (3 << 8) | 2,
    SuspendedWatchdog = (3 << 8) | 3,
    SuspendedRestored = (3 << 8) | 4,
    SuspendedFromSnapshot = (3 << 8) | 5,
    SuspendedApiError = (3 << 8) | 6,
    SuspendedPostCopy = (3 << 8) | 7,
    SuspendedPostCopyFailed = (3 << 8) | 8,
    ResumedUnpaused = (4 << 8) | 0,
    ResumedMigrated = (4 << 8) | 1,
    ResumedFromSnapshot = (4 << 8) | 2,
    ResumedPostCopy = (4 << 8) | 3,
    ResumedPostCopyFailed = (4 << 8) | 4,
    StoppedShutdown = (5 << 8) | 0,
    StoppedDestroyed = (5 << 8) | 1,
    StoppedCrashed = (5 << 8) | 2,
    StoppedMigrated = (5 << 8) | 3,
    StoppedSaved = (5 << 8) | 4,
    StoppedFailed = (5 << 8) | 5,
    StoppedFromSnapshot = (5 << 8) | 6,
    ShutdownFinished = (6 << 8) | 0,
    ShutdownGuest = (6 << 8) | 1,
    ShutdownHost = (6 << 8) | 2,
    PmSuspendedMemory = (7 << 8) | 0,
    PmSuspendedDisk = (7 << 8) | 1,
    CrashedPanicked = (8 << 8) | 0,
    CrashedCrashLoaded = (8 << 8) | 1,
}

/// <summary>What a <see cref="DomainEvent"/> reports.</summary>
public enum DomainEventKind
{
    /// <summary>VIR_DOMAIN_EVENT_ID_LIFECYCLE: see <see cref="DomainEvent.Lifecycle"/> and <see cref="DomainEvent.Detail"/>.</summary>
    Lifecycle,

    /// <summary>VIR_DOMAIN_EVENT_ID_REBOOT: the guest rebooted.</summary>
    Reboot,

    /// <summary>VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE: the guest agent connected (AgentState 1) or disconnected (2).</summary>
    AgentLifecycle,

    /// <summary>The connection to libvirtd was lost; events may be missed until <see cref="ConnectionRestored"/>.</summary>
    ConnectionLost,

    /// <summary>Reconnected after a loss: events between the two were missed, so consumers must resync from libvirt.</summary>
    ConnectionRestored,
}

/// <summary>
/// One event from libvirt, written to a channel by the event-loop thread.
/// Timestamp is <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> at receipt (monotonic).
/// </summary>
public sealed record DomainEvent(DomainEventKind Kind, Guid Uuid, string Name, DomainLifecycleDetail Detail, int AgentState, int AgentReason, long Timestamp)
{
    public DomainLifecycleEventType Lifecycle => (DomainLifecycleEventType)((int)Detail >> 8);

    public static DomainEvent ForConnection(DomainEventKind kind) =>
        new(kind, Guid.Empty, string.Empty, default, 0, 0, System.Diagnostics.Stopwatch.GetTimestamp());

    public override string ToString() => Kind switch
    {
        DomainEventKind.Lifecycle => $"{Name} {Detail}",
        DomainEventKind.AgentLifecycle => $"{Name} agent state {AgentState} reason {AgentReason}",
        DomainEventKind.Reboot => $"{Name} rebooted",
        _ => Kind.ToString(),
    };
}
