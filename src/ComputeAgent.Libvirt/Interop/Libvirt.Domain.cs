using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt.Interop;

internal static partial class Libvirt
{
    internal const int UuidLength = 16; // VIR_UUID_BUFLEN

    [StructLayout(LayoutKind.Sequential)]
    internal struct VirDomainInfo
    {
        public byte State;
        public CULong MaxMem;
        public CULong Memory;
        public ushort NrVirtCpu;
        public ulong CpuTime;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct VirDomainBlockStats
    {
        public long RdReq;
        public long RdBytes;
        public long WrReq;
        public long WrBytes;
        public long Errs;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct VirDomainInterfaceStats
    {
        public long RxBytes;
        public long RxPackets;
        public long RxErrs;
        public long RxDrop;
        public long TxBytes;
        public long TxPackets;
        public long TxErrs;
        public long TxDrop;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct VirDomainBlockJobInfo
    {
        public int Type;
        public CULong Bandwidth;
        public ulong Cur;
        public ulong End;
    }

    // virTypedParameter: char field[80]; int type; union { ... } value (8-byte aligned).
    [StructLayout(LayoutKind.Explicit, Size = 96)]
    internal unsafe struct VirTypedParameter
    {
        [FieldOffset(0)]
        public fixed byte Field[80];

        [FieldOffset(80)]
        public int Type;

        [FieldOffset(88)]
        public int I;

        [FieldOffset(88)]
        public uint Ui;

        [FieldOffset(88)]
        public long L;

        [FieldOffset(88)]
        public ulong Ul;

        [FieldOffset(88)]
        public double D;

        [FieldOffset(88)]
        public byte B;

        [FieldOffset(88)]
        public byte* S;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct VirDomainStatsRecord
    {
        public nint Dom;
        public VirTypedParameter* Params;
        public int NParams;
    }

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SafeDomainHandle virDomainDefineXMLFlags(SafeConnectHandle conn, string xml, uint flags);

    [LibraryImport(LibraryName)]
    internal static unsafe partial SafeDomainHandle virDomainLookupByUUID(SafeConnectHandle conn, byte* uuid);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SafeDomainHandle virDomainLookupByName(SafeConnectHandle conn, string name);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virConnectListAllDomains(SafeConnectHandle conn, nint** domains, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virConnectGetAllDomainStats(SafeConnectHandle conn, uint stats, out SafeDomainStatsRecordListHandle retStats, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial void virDomainStatsRecordListFree(nint stats);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainFree(nint domain);

    internal const uint DomainConsoleForce = 1 << 0; // VIR_DOMAIN_CONSOLE_FORCE
    internal const uint DomainConsoleSafe = 1 << 1; // VIR_DOMAIN_CONSOLE_SAFE

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainOpenConsole(SafeDomainHandle dom, string? devName, SafeStreamHandle stream, uint flags);

    /// <summary>Writes the 16 raw UUID bytes (RFC 4122 order) into buf.</summary>
    [LibraryImport(LibraryName)]
    internal static unsafe partial int virDomainGetUUID(SafeDomainHandle domain, byte* buf);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virDomainGetUUID(nint domain, byte* buf);

    /// <summary>Returns a string the domain object owns: never free it.</summary>
    [LibraryImport(LibraryName)]
    internal static unsafe partial byte* virDomainGetName(SafeDomainHandle domain);

    [LibraryImport(LibraryName)]
    internal static unsafe partial byte* virDomainGetName(nint domain);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainUndefineFlags(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainCreateWithFlags(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainDestroyFlags(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainShutdownFlags(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainReboot(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainReset(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainSuspend(SafeDomainHandle domain);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainResume(SafeDomainHandle domain);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainManagedSave(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainHasManagedSaveImage(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainManagedSaveRemove(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainGetState(SafeDomainHandle domain, out int state, out int reason, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainGetInfo(SafeDomainHandle domain, out VirDomainInfo info);

    [LibraryImport(LibraryName)]
    internal static unsafe partial byte* virDomainGetXMLDesc(SafeDomainHandle domain, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainIsActive(SafeDomainHandle domain);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainIsPersistent(SafeDomainHandle domain);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainSetVcpusFlags(SafeDomainHandle domain, uint nvcpus, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainSetMemoryFlags(SafeDomainHandle domain, CULong memory, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainAttachDeviceFlags(SafeDomainHandle domain, string xml, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainDetachDeviceFlags(SafeDomainHandle domain, string xml, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainUpdateDeviceFlags(SafeDomainHandle domain, string xml, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainSetUserPassword(SafeDomainHandle domain, string user, string password, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial byte* virDomainGetMetadata(SafeDomainHandle domain, int type, string? uri, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainSetMetadata(SafeDomainHandle domain, int type, string? metadata, string? key, string? uri, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockResize(SafeDomainHandle domain, string disk, ulong size, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockRebase(SafeDomainHandle domain, string disk, string? baseDisk, CULong bandwidth, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial int virDomainBlockCopy(SafeDomainHandle domain, string disk, string destxml, VirTypedParameter* parameters, int nparams, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainGetBlockJobInfo(SafeDomainHandle domain, string disk, out VirDomainBlockJobInfo info, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockJobAbort(SafeDomainHandle domain, string disk, uint flags);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virDomainFSFreeze(SafeDomainHandle domain, byte** mountpoints, uint nmountpoints, uint flags);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virDomainFSThaw(SafeDomainHandle domain, byte** mountpoints, uint nmountpoints, uint flags);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainInterfaceStats(SafeDomainHandle domain, string device, out VirDomainInterfaceStats stats, nuint size);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockStats(SafeDomainHandle domain, string disk, out VirDomainBlockStats stats, nuint size);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SafeDomainSnapshotHandle virDomainSnapshotCreateXML(SafeDomainHandle domain, string xmlDesc, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainSnapshotDelete(SafeDomainSnapshotHandle snapshot, uint flags);

    [LibraryImport(LibraryName)]
    internal static unsafe partial byte* virDomainSnapshotGetName(SafeDomainSnapshotHandle snapshot);

    [LibraryImport(LibraryName)]
    internal static partial int virDomainSnapshotFree(nint snapshot);
}
