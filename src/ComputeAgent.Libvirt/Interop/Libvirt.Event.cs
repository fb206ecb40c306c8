using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt.Interop;

internal static partial class Libvirt
{
    internal const int EventIdLifecycle = 0;
    internal const int EventIdReboot = 1;
    internal const int EventIdAgentLifecycle = 18;

    [LibraryImport(LibraryName)]
    internal static partial int virEventRegisterDefaultImpl();

    [LibraryImport(LibraryName)]
    internal static partial int virEventRunDefaultImpl();

    [LibraryImport(LibraryName)]
    internal static unsafe partial int virEventAddTimeout(int frequency, delegate* unmanaged<int, nint, void> cb, nint opaque, delegate* unmanaged<nint, void> ff);

    [LibraryImport(LibraryName)]
    internal static partial void virEventUpdateTimeout(int timer, int frequency);

    /// <summary>The callback is passed as an untyped pointer: libvirt casts it by event id.</summary>
    [LibraryImport(LibraryName)]
    internal static unsafe partial int virConnectDomainEventRegisterAny(SafeConnectHandle conn, nint dom, int eventId, void* cb, nint opaque, delegate* unmanaged<nint, void> freecb);

    [LibraryImport(LibraryName)]
    internal static partial int virConnectDomainEventDeregisterAny(SafeConnectHandle conn, int callbackId);
}
