using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt.Interop;

/// <summary>virConnectPtr; released with virConnectClose.</summary>
internal sealed class SafeConnectHandle : SafeHandle
{
    public SafeConnectHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => Libvirt.virConnectClose(handle) >= 0;
}

/// <summary>virDomainPtr; released with virDomainFree.</summary>
internal sealed class SafeDomainHandle : SafeHandle
{
    public SafeDomainHandle()
        : base(0, ownsHandle: true)
    {
    }

    internal SafeDomainHandle(nint existing)
        : base(0, ownsHandle: true) => SetHandle(existing);

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => Libvirt.virDomainFree(handle) == 0;
}

/// <summary>virDomainSnapshotPtr; released with virDomainSnapshotFree.</summary>
internal sealed class SafeDomainSnapshotHandle : SafeHandle
{
    public SafeDomainSnapshotHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => Libvirt.virDomainSnapshotFree(handle) == 0;
}

/// <summary>virDomainStatsRecordPtr*, the NULL-terminated list virConnectGetAllDomainStats returns; released with virDomainStatsRecordListFree.</summary>
internal sealed class SafeDomainStatsRecordListHandle : SafeHandle
{
    public SafeDomainStatsRecordListHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    /// <summary>The records; valid while this handle is open.</summary>
    internal unsafe Libvirt.VirDomainStatsRecord** Records => (Libvirt.VirDomainStatsRecord**)handle;

    protected override bool ReleaseHandle()
    {
        Libvirt.virDomainStatsRecordListFree(handle);
        return true;
    }
}

/// <summary>virStreamPtr; released with virStreamFree.</summary>
internal sealed class SafeStreamHandle : SafeHandle
{
    public SafeStreamHandle()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle() => Libvirt.virStreamFree(handle) == 0;
}
