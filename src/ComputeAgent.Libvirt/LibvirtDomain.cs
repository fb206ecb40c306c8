using System.Runtime.InteropServices;
using System.Text;
using ComputeAgent.Libvirt.Interop;
using static ComputeAgent.Libvirt.Interop.Libvirt;

namespace ComputeAgent.Libvirt;

/// <summary>
/// One domain reference (virDomainPtr). Disposing frees the reference, not the domain.
/// Every method maps to one libvirt call and throws <see cref="LibvirtException"/> on failure.
/// </summary>
public sealed class LibvirtDomain : IDisposable
{
    private readonly SafeDomainHandle handle;
    private Guid? uuid;
    private string? name;

    internal LibvirtDomain(SafeDomainHandle handle, Guid? uuid)
    {
        this.handle = handle;
        this.uuid = uuid;
    }

    public unsafe Guid Uuid
    {
        get
        {
            if (uuid is { } known)
            {
                return known;
            }

            byte* bytes = stackalloc byte[UuidLength];
            if (virDomainGetUUID(handle, bytes) < 0)
            {
                throw LibvirtException.FromLastError("virDomainGetUUID");
            }

            var value = new Guid(new ReadOnlySpan<byte>(bytes, UuidLength), bigEndian: true);
            uuid = value;
            return value;
        }
    }

    public unsafe string Name => name ??= Marshal.PtrToStringUTF8((nint)virDomainGetName(handle)) ?? throw LibvirtException.FromLastError("virDomainGetName");

    public bool IsActive => virDomainIsActive(handle) switch
    {
        1 => true,
        0 => false,
        _ => throw LibvirtException.FromLastError("virDomainIsActive"),
    };

    public bool IsPersistent => virDomainIsPersistent(handle) switch
    {
        1 => true,
        0 => false,
        _ => throw LibvirtException.FromLastError("virDomainIsPersistent"),
    };

    public void Create(DomainCreateFlags flags = DomainCreateFlags.None) => Check(AgentMeter.StartLibvirtCall(), virDomainCreateWithFlags(handle, (uint)flags), "virDomainCreateWithFlags");

    public void Destroy(DomainDestroyFlags flags = DomainDestroyFlags.None) => Check(AgentMeter.StartLibvirtCall(), virDomainDestroyFlags(handle, (uint)flags), "virDomainDestroyFlags");

    /// <summary>Asks the guest to shut down (ACPI power button by default); returns before it has.</summary>
    public void Shutdown(DomainShutdownFlags flags = DomainShutdownFlags.Default) => Check(AgentMeter.StartLibvirtCall(), virDomainShutdownFlags(handle, (uint)flags), "virDomainShutdownFlags");

    public void Reboot(DomainShutdownFlags flags = DomainShutdownFlags.Default) => Check(AgentMeter.StartLibvirtCall(), virDomainReboot(handle, (uint)flags), "virDomainReboot");

    public void Reset() => Check(AgentMeter.StartLibvirtCall(), virDomainReset(handle, 0), "virDomainReset");

    public void Suspend() => Check(AgentMeter.StartLibvirtCall(), virDomainSuspend(handle), "virDomainSuspend");

    public void Resume() => Check(AgentMeter.StartLibvirtCall(), virDomainResume(handle), "virDomainResume");

    public void ManagedSave() => Check(AgentMeter.StartLibvirtCall(), virDomainManagedSave(handle, 0), "virDomainManagedSave");

    public bool HasManagedSaveImage() => virDomainHasManagedSaveImage(handle, 0) switch
    {
        1 => true,
        0 => false,
        _ => throw LibvirtException.FromLastError("virDomainHasManagedSaveImage"),
    };

    public void ManagedSaveRemove() => Check(AgentMeter.StartLibvirtCall(), virDomainManagedSaveRemove(handle, 0), "virDomainManagedSaveRemove");

    public void Undefine(DomainUndefineFlags flags = DomainUndefineFlags.None) => Check(AgentMeter.StartLibvirtCall(), virDomainUndefineFlags(handle, (uint)flags), "virDomainUndefineFlags");

    public DomainStateInfo GetState()
    {
        Check(AgentMeter.StartLibvirtCall(), virDomainGetState(handle, out var state, out var reason, 0), "virDomainGetState");
        return new DomainStateInfo((DomainState)state, reason);
    }

    public DomainInfo GetInfo()
    {
        Check(AgentMeter.StartLibvirtCall(), virDomainGetInfo(handle, out var info), "virDomainGetInfo");
        return new DomainInfo((DomainState)info.State, info.MaxMem.Value, info.Memory.Value, info.NrVirtCpu, info.CpuTime);
    }

    public unsafe string GetXmlDesc(DomainXmlFlags flags = DomainXmlFlags.None) =>
        TakeString(virDomainGetXMLDesc(handle, (uint)flags)) ?? throw LibvirtException.FromLastError("virDomainGetXMLDesc");

    public void SetVcpus(uint count, DomainModificationFlags flags = DomainModificationFlags.Current) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainSetVcpusFlags(handle, count, (uint)flags), "virDomainSetVcpusFlags");

    public void SetMemory(ulong memoryKiB, DomainModificationFlags flags = DomainModificationFlags.Current) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainSetMemoryFlags(handle, new CULong((nuint)memoryKiB), (uint)flags), "virDomainSetMemoryFlags");

    public void AttachDevice(string deviceXml, DomainModificationFlags flags = DomainModificationFlags.Current) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainAttachDeviceFlags(handle, deviceXml, (uint)flags), "virDomainAttachDeviceFlags");

    public void DetachDevice(string deviceXml, DomainModificationFlags flags = DomainModificationFlags.Current) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainDetachDeviceFlags(handle, deviceXml, (uint)flags), "virDomainDetachDeviceFlags");

    public void UpdateDevice(string deviceXml, DomainModificationFlags flags = DomainModificationFlags.Current) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainUpdateDeviceFlags(handle, deviceXml, (uint)flags), "virDomainUpdateDeviceFlags");

    /// <summary>Sets a guest user's password through the QEMU guest agent.</summary>
    public void SetUserPassword(string user, string password) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainSetUserPassword(handle, user, password, 0), "virDomainSetUserPassword");

    /// <summary>The metadata element under <paramref name="namespaceUri"/> (or title/description), or null when there is none.</summary>
    public unsafe string? GetMetadata(DomainMetadataType type, string? namespaceUri, DomainModificationFlags flags = DomainModificationFlags.Current)
    {
        var value = virDomainGetMetadata(handle, (int)type, namespaceUri, (uint)flags);
        if (value != null)
        {
            return TakeString(value);
        }

        var error = LibvirtException.FromLastError("virDomainGetMetadata");
        return error.Code == LibvirtErrorCode.NoDomainMetadata ? null : throw error;
    }

    /// <summary>Sets (or with null <paramref name="metadata"/> removes) a metadata element or the title/description.</summary>
    public void SetMetadata(DomainMetadataType type, string? metadata, string? key, string? namespaceUri, DomainModificationFlags flags = DomainModificationFlags.Current) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainSetMetadata(handle, (int)type, metadata, key, namespaceUri, (uint)flags), "virDomainSetMetadata");

    public void BlockResize(string disk, ulong size, BlockResizeFlags flags = BlockResizeFlags.Bytes) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainBlockResize(handle, disk, size, (uint)flags), "virDomainBlockResize");

    public void BlockRebase(string disk, string? baseImage, ulong bandwidthMiBps = 0, BlockRebaseFlags flags = BlockRebaseFlags.None) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainBlockRebase(handle, disk, baseImage, new CULong((nuint)bandwidthMiBps), (uint)flags), "virDomainBlockRebase");

    public unsafe void BlockCopy(string disk, string destinationXml, BlockCopyFlags flags = BlockCopyFlags.None) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainBlockCopy(handle, disk, destinationXml, null, 0, (uint)flags), "virDomainBlockCopy");

    /// <summary>The disk's running block job, or null when it has none.</summary>
    public BlockJobInfo? GetBlockJobInfo(string disk) => virDomainGetBlockJobInfo(handle, disk, out var info, 0) switch
    {
        0 => null,
        > 0 => new BlockJobInfo(info.Type, info.Bandwidth.Value, info.Cur, info.End),
        _ => throw LibvirtException.FromLastError("virDomainGetBlockJobInfo"),
    };

    public void BlockJobAbort(string disk, BlockJobAbortFlags flags = BlockJobAbortFlags.None) =>
        Check(AgentMeter.StartLibvirtCall(), virDomainBlockJobAbort(handle, disk, (uint)flags), "virDomainBlockJobAbort");

    /// <summary>Freezes the guest's file systems through the guest agent; returns how many were frozen.</summary>
    public int FsFreeze(IReadOnlyList<string>? mountPoints = null) => FileSystems(mountPoints, thaw: false);

    public int FsThaw(IReadOnlyList<string>? mountPoints = null) => FileSystems(mountPoints, thaw: true);

    public DomainInterfaceStats GetInterfaceStats(string device)
    {
        Check(AgentMeter.StartLibvirtCall(), virDomainInterfaceStats(handle, device, out var s, (nuint)Marshal.SizeOf<VirDomainInterfaceStats>()), "virDomainInterfaceStats");
        return new DomainInterfaceStats(s.RxBytes, s.RxPackets, s.RxErrs, s.RxDrop, s.TxBytes, s.TxPackets, s.TxErrs, s.TxDrop);
    }

    public DomainBlockStats GetBlockStats(string disk)
    {
        Check(AgentMeter.StartLibvirtCall(), virDomainBlockStats(handle, disk, out var s, (nuint)Marshal.SizeOf<VirDomainBlockStats>()), "virDomainBlockStats");
        return new DomainBlockStats(s.RdReq, s.RdBytes, s.WrReq, s.WrBytes, s.Errs);
    }

    public LibvirtDomainSnapshot CreateSnapshot(string snapshotXml, SnapshotCreateFlags flags = SnapshotCreateFlags.None)
    {
        var snapshot = virDomainSnapshotCreateXML(handle, snapshotXml, (uint)flags);
        if (snapshot.IsInvalid)
        {
            snapshot.Dispose();
            throw LibvirtException.FromLastError("virDomainSnapshotCreateXML");
        }

        return new LibvirtDomainSnapshot(snapshot);
    }

    /// <summary>The raw handle, for this assembly's wrappers only (the console).</summary>
    internal SafeDomainHandle Handle => handle;

    public void Dispose() => handle.Dispose();

    public override string ToString() => handle.IsClosed ? "LibvirtDomain (freed)" : $"{Name} ({Uuid})";

    internal static unsafe Guid ReadUuid(nint domain)
    {
        byte* bytes = stackalloc byte[UuidLength];
        return virDomainGetUUID(domain, bytes) < 0 ? Guid.Empty : new Guid(new ReadOnlySpan<byte>(bytes, UuidLength), bigEndian: true);
    }

    internal static unsafe string ReadName(nint domain) => Marshal.PtrToStringUTF8((nint)virDomainGetName(domain)) ?? string.Empty;

    /// <remarks>
    /// Callers pass <see cref="AgentMeter.StartLibvirtCall"/> before the call as the first argument:
    /// C# evaluates arguments left to right, so it is taken before the libvirt call runs.
    /// </remarks>
    private static void Check(long started, int result, string operation)
    {
        AgentMeter.EndLibvirtCall(started, operation);
        if (result < 0)
        {
            throw LibvirtException.FromLastError(operation);
        }
    }

    private unsafe int FileSystems(IReadOnlyList<string>? mountPoints, bool thaw)
    {
        var count = mountPoints?.Count ?? 0;
        var pointers = new nint[count];
        try
        {
            for (var i = 0; i < count; i++)
            {
                pointers[i] = Marshal.StringToCoTaskMemUTF8(mountPoints![i]);
            }

            fixed (nint* array = pointers)
            {
                var result = thaw
                    ? virDomainFSThaw(handle, count == 0 ? null : (byte**)array, (uint)count, 0)
                    : virDomainFSFreeze(handle, count == 0 ? null : (byte**)array, (uint)count, 0);
                return result < 0 ? throw LibvirtException.FromLastError(thaw ? "virDomainFSThaw" : "virDomainFSFreeze") : result;
            }
        }
        finally
        {
            foreach (var pointer in pointers)
            {
                Marshal.FreeCoTaskMem(pointer);
            }
        }
    }
}

/// <summary>A domain snapshot reference (virDomainSnapshotPtr).</summary>
public sealed class LibvirtDomainSnapshot : IDisposable
{
    private readonly SafeDomainSnapshotHandle handle;

    internal LibvirtDomainSnapshot(SafeDomainSnapshotHandle handle) => this.handle = handle;

    public unsafe string Name => Marshal.PtrToStringUTF8((nint)virDomainSnapshotGetName(handle)) ?? throw LibvirtException.FromLastError("virDomainSnapshotGetName");

    public void Delete(SnapshotDeleteFlags flags = SnapshotDeleteFlags.None)
    {
        if (virDomainSnapshotDelete(handle, (uint)flags) < 0)
        {
            throw LibvirtException.FromLastError("virDomainSnapshotDelete");
        }
    }

    public void Dispose() => handle.Dispose();
}
