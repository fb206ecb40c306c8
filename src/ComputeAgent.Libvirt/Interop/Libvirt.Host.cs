using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt.Interop;

internal static partial class Libvirt
{
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct VirNodeInfo
    {
        public fixed byte Model[32];
        public CULong Memory;
        public uint Cpus;
        public uint Mhz;
        public uint Nodes;
        public uint Sockets;
        public uint Cores;
        public uint Threads;
    }

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SafeConnectHandle virConnectOpen(string? name);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SafeConnectHandle virConnectOpenReadOnly(string? name);

    [LibraryImport(LibraryName)]
    internal static partial int virConnectClose(nint conn);

    [LibraryImport(LibraryName)]
    internal static unsafe partial byte* virConnectGetHostname(SafeConnectHandle conn);

    [LibraryImport(LibraryName)]
    internal static unsafe partial byte* virConnectGetURI(SafeConnectHandle conn);

    [LibraryImport(LibraryName)]
    internal static partial int virConnectGetVersion(SafeConnectHandle conn, out ulong hvVer);

    [LibraryImport(LibraryName)]
    internal static partial int virConnectGetLibVersion(SafeConnectHandle conn, out ulong libVer);

    [LibraryImport(LibraryName)]
    internal static unsafe partial byte* virConnectGetCapabilities(SafeConnectHandle conn);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial byte* virConnectGetDomainCapabilities(SafeConnectHandle conn, string? emulatorbin, string? arch, string? machine, string? virttype, uint flags);

    [LibraryImport(LibraryName)]
    internal static partial int virNodeGetInfo(SafeConnectHandle conn, out VirNodeInfo info);

    [LibraryImport(LibraryName)]
    internal static partial ulong virNodeGetFreeMemory(SafeConnectHandle conn);

    [LibraryImport(LibraryName)]
    internal static partial int virConnectSetKeepAlive(SafeConnectHandle conn, int interval, uint count);

    [LibraryImport(LibraryName)]
    internal static partial int virConnectIsAlive(SafeConnectHandle conn);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virConnectRegisterCloseCallback(SafeConnectHandle conn, delegate* unmanaged<nint, int, nint, void> cb, nint opaque, delegate* unmanaged<nint, void> freecb);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virConnectUnregisterCloseCallback(SafeConnectHandle conn, delegate* unmanaged<nint, int, nint, void> cb);
}
