namespace ComputeAgent.Libvirt;

#pragma warning disable CA1711, CA1028 // libvirt's own names and widths

/// <summary>virDomainDefineFlags.</summary>
[Flags]
public enum DomainDefineFlags : uint
{
    None = 0,
    Validate = 1 << 0,
}

/// <summary>virDomainUndefineFlagsValues.</summary>
[Flags]
public enum DomainUndefineFlags : uint
{
    None = 0,
    ManagedSave = 1 << 0,
    SnapshotsMetadata = 1 << 1,
    Nvram = 1 << 2,
    KeepNvram = 1 << 3,
    CheckpointsMetadata = 1 << 4,
    Tpm = 1 << 5,
    KeepTpm = 1 << 6,
}

/// <summary>virDomainCreateFlags.</summary>
[Flags]
public enum DomainCreateFlags : uint
{
    None = 0,
    StartPaused = 1 << 0,
    AutoDestroy = 1 << 1,
    BypassCache = 1 << 2,
    ForceBoot = 1 << 3,
    Validate = 1 << 4,
    ResetNvram = 1 << 5,
}

/// <summary>virDomainDestroyFlagsValues.</summary>
[Flags]
public enum DomainDestroyFlags : uint
{
    None = 0,
    Graceful = 1 << 0,
    RemoveLogs = 1 << 1,
}

/// <summary>virDomainShutdownFlagValues / virDomainRebootFlagValues (same bits).</summary>
[Flags]
public enum DomainShutdownFlags : uint
{
    Default = 0,
    AcpiPowerButton = 1 << 0,
    GuestAgent = 1 << 1,
    Initctl = 1 << 2,
    Signal = 1 << 3,
    Paravirt = 1 << 4,
}

/// <summary>virDomainXMLFlags.</summary>
[Flags]
public enum DomainXmlFlags : uint
{
    None = 0,
    Secure = 1 << 0,
    Inactive = 1 << 1,
    UpdateCpu = 1 << 2,
    Migratable = 1 << 3,
}

/// <summary>virConnectListAllDomainsFlags (also the filter bits of virConnectGetAllDomainStats).</summary>
[Flags]
public enum ListDomainsFlags : uint
{
    All = 0,
    Active = 1 << 0,
    Inactive = 1 << 1,
    Persistent = 1 << 2,
    Transient = 1 << 3,
    Running = 1 << 4,
    Paused = 1 << 5,
    Shutoff = 1 << 6,
    Other = 1 << 7,
    ManagedSave = 1 << 8,
    NoManagedSave = 1 << 9,
    Autostart = 1 << 10,
    NoAutostart = 1 << 11,
    HasSnapshot = 1 << 12,
    NoSnapshot = 1 << 13,
}

/// <summary>virDomainStatsTypes.</summary>
[Flags]
public enum DomainStatsTypes : uint
{
    State = 1 << 0,
    CpuTotal = 1 << 1,
    Balloon = 1 << 2,
    Vcpu = 1 << 3,
    Interface = 1 << 4,
    Block = 1 << 5,
    Perf = 1 << 6,
    IoThread = 1 << 7,
    Memory = 1 << 8,
}

/// <summary>virDomainModificationImpact plus the vCPU / memory / device-specific bits.</summary>
[Flags]
public enum DomainModificationFlags : uint
{
    Current = 0,
    Live = 1 << 0,
    Config = 1 << 1,

    /// <summary>VIR_DOMAIN_VCPU_MAXIMUM / VIR_DOMAIN_MEM_MAXIMUM / VIR_DOMAIN_DEVICE_MODIFY_FORCE share bit 2.</summary>
    Maximum = 1 << 2,
    Guest = 1 << 3,
}

/// <summary>virDomainMetadataType.</summary>
public enum DomainMetadataType
{
    Description = 0,
    Title = 1,
    Element = 2,
}

/// <summary>virDomainSnapshotCreateFlags.</summary>
[Flags]
public enum SnapshotCreateFlags : uint
{
    None = 0,
    Redefine = 1 << 0,
    Current = 1 << 1,
    NoMetadata = 1 << 2,
    Halt = 1 << 3,
    DiskOnly = 1 << 4,
    ReuseExternal = 1 << 5,
    Quiesce = 1 << 6,
    Atomic = 1 << 7,
    Live = 1 << 8,
    Validate = 1 << 9,
}

/// <summary>virDomainSnapshotDeleteFlags.</summary>
[Flags]
public enum SnapshotDeleteFlags : uint
{
    None = 0,
    Children = 1 << 0,
    MetadataOnly = 1 << 1,
    ChildrenOnly = 1 << 2,
}

/// <summary>virDomainBlockRebaseFlags.</summary>
[Flags]
public enum BlockRebaseFlags : uint
{
    None = 0,
    Shallow = 1 << 0,
    ReuseExternal = 1 << 1,
    CopyRaw = 1 << 2,
    Copy = 1 << 3,
    Relative = 1 << 4,
    CopyDevice = 1 << 5,
    BandwidthBytes = 1 << 6,
}

/// <summary>virDomainBlockCopyFlags.</summary>
[Flags]
public enum BlockCopyFlags : uint
{
    None = 0,
    Shallow = 1 << 0,
    ReuseExternal = 1 << 1,
    TransientJob = 1 << 2,
    SynchronousWrites = 1 << 3,
}

/// <summary>virDomainBlockJobAbortFlags.</summary>
[Flags]
public enum BlockJobAbortFlags : uint
{
    None = 0,
    Async = 1 << 0,
    Pivot = 1 << 1,
}

/// <summary>virDomainBlockResizeFlags.</summary>
[Flags]
public enum BlockResizeFlags : uint
{
    KiB = 0,
    Bytes = 1 << 0,
}

/// <summary>virConnectCloseReason: why libvirt closed a connection.</summary>
public enum ConnectionCloseReason
{
    Error = 0,
    EndOfFile = 1,
    KeepAlive = 2,
    Client = 3,
}
