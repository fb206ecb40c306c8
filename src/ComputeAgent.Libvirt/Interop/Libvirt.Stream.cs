using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt.Interop;

internal static partial class Libvirt
{
    internal const uint StreamNonBlock = 1 << 0; // VIR_STREAM_NONBLOCK

    /// <summary>virStreamRecv / virStreamSend's answer on a non-blocking stream with nothing to do now.</summary>
    internal const int StreamWouldBlock = -2;

    internal const int StreamEventReadable = 1 << 0;
    internal const int StreamEventWritable = 1 << 1;
    internal const int StreamEventError = 1 << 2;
    internal const int StreamEventHangup = 1 << 3;

    [LibraryImport(LibraryName)]
    internal static partial SafeStreamHandle virStreamNew(SafeConnectHandle conn, uint flags);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virStreamSend(SafeStreamHandle stream, byte* data, nuint nbytes);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virStreamRecv(SafeStreamHandle stream, byte* data, nuint nbytes);

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virStreamEventAddCallback(SafeStreamHandle stream, int events, delegate* unmanaged<nint, int, nint, void> cb, nint opaque, delegate* unmanaged<nint, void> ff);

    [LibraryImport(LibraryName)]
    internal static partial int virStreamEventUpdateCallback(SafeStreamHandle stream, int events);

    [LibraryImport(LibraryName)]
    internal static partial int virStreamEventRemoveCallback(SafeStreamHandle stream);

    [LibraryImport(LibraryName)]
    internal static partial int virStreamAbort(SafeStreamHandle stream);

    [LibraryImport(LibraryName)]
    internal static partial int virStreamFree(nint stream);
}
