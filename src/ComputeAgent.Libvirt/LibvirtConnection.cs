using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading.Channels;
using ComputeAgent.Libvirt.Interop;
using static ComputeAgent.Libvirt.Interop.Libvirt;

namespace ComputeAgent.Libvirt;

/// <summary>
/// One connection to a libvirt driver (virConnectPtr). Thread-safe, as libvirt's connections are.
/// Calls block for as long as libvirt takes; callers that must not block offload them.
/// </summary>
public sealed class LibvirtConnection : IDisposable
{
    private readonly SafeConnectHandle handle;
    private readonly Lock callbackGate = new();
    private readonly List<int> eventCallbackIds = [];
    private GCHandle closeCallbackTarget;
    private bool closeCallbackRegistered;

    private LibvirtConnection(SafeConnectHandle handle, string uri, bool readOnly)
    {
        this.handle = handle;
        Uri = uri;
        IsReadOnly = readOnly;
    }

    public string Uri { get; }

    public bool IsReadOnly { get; }

    /// <summary>True once this wrapper has closed its connection (a session closes dead ones).</summary>
    public bool IsClosed => handle.IsClosed;

    /// <summary>Opens a connection, e.g. qemu:///system or test:///default.</summary>
    public static LibvirtConnection Open(string uri, bool readOnly = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(uri);
        LibvirtEventLoop.EnsureStarted();
        var handle = readOnly ? virConnectOpenReadOnly(uri) : virConnectOpen(uri);
        if (handle.IsInvalid)
        {
            var error = LibvirtException.FromLastError(readOnly ? "virConnectOpenReadOnly" : "virConnectOpen");
            handle.Dispose();
            throw error;
        }

        return new LibvirtConnection(handle, uri, readOnly);
    }

    public unsafe string GetHostname() => TakeString(virConnectGetHostname(handle)) ?? throw LibvirtException.FromLastError("virConnectGetHostname");

    /// <summary>The hypervisor's version as libvirt encodes it: major * 1,000,000 + minor * 1,000 + release.</summary>
    public ulong GetHypervisorVersion() =>
        virConnectGetVersion(handle, out var version) < 0 ? throw LibvirtException.FromLastError("virConnectGetVersion") : version;

    /// <summary>A version as libvirt encodes it (major * 1,000,000 + minor * 1,000 + release) in its usual form, e.g. "9.0.0".</summary>
    public static string FormatVersion(ulong encoded) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{encoded / 1_000_000}.{encoded / 1_000 % 1_000}.{encoded % 1_000}");

    /// <summary>The libvirt version on the far side of the connection (major * 1,000,000 + minor * 1,000 + release).</summary>
    public ulong GetLibVersion() =>
        virConnectGetLibVersion(handle, out var version) < 0 ? throw LibvirtException.FromLastError("virConnectGetLibVersion") : version;

    public unsafe string GetCapabilities() => TakeString(virConnectGetCapabilities(handle)) ?? throw LibvirtException.FromLastError("virConnectGetCapabilities");

    public unsafe string GetDomainCapabilities(string? emulatorBinary = null, string? arch = null, string? machine = null, string? virtType = null) =>
        TakeString(virConnectGetDomainCapabilities(handle, emulatorBinary, arch, machine, virtType, 0))
        ?? throw LibvirtException.FromLastError("virConnectGetDomainCapabilities");

    public unsafe NodeInfo GetNodeInfo()
    {
        if (virNodeGetInfo(handle, out var info) < 0)
        {
            throw LibvirtException.FromLastError("virNodeGetInfo");
        }

        var model = Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(info.Model));
        return new NodeInfo(model, info.Memory.Value, (int)info.Cpus, (int)info.Mhz, (int)info.Nodes, (int)info.Sockets, (int)info.Cores, (int)info.Threads);
    }

    /// <summary>Free host memory in bytes.</summary>
    public ulong GetFreeMemory()
    {
        var free = virNodeGetFreeMemory(handle);
        return free == 0 ? throw LibvirtException.FromLastError("virNodeGetFreeMemory") : free;
    }

    /// <summary>False once libvirt has seen the connection die (EOF, keepalive timeout).</summary>
    public bool IsAlive => virConnectIsAlive(handle) switch
    {
        1 => true,
        0 => false,
        _ => throw LibvirtException.FromLastError("virConnectIsAlive"),
    };

    /// <summary>
    /// Starts keepalive probes: after <paramref name="count"/> unanswered probes sent every
    /// <paramref name="intervalSeconds"/>, libvirt closes the connection and the close callback fires.
    /// Returns false when the connection has no keepalive: local drivers such as test:/// answer
    /// VIR_ERR_NO_SUPPORT, a remote daemon without keepalive support answers 1.
    /// </summary>
    public bool SetKeepAlive(int intervalSeconds, uint count)
    {
        var result = virConnectSetKeepAlive(handle, intervalSeconds, count);
        if (result >= 0)
        {
            return result == 0;
        }

        var error = LibvirtException.FromLastError("virConnectSetKeepAlive");
        return error.Code == LibvirtErrorCode.NoSupport ? false : throw error;
    }

    public LibvirtDomain DefineXml(string xml, DomainDefineFlags flags = DomainDefineFlags.None)
    {
        ArgumentNullException.ThrowIfNull(xml);
        return Wrap(AgentMeter.StartLibvirtCall(), virDomainDefineXMLFlags(handle, xml, (uint)flags), "virDomainDefineXMLFlags");
    }

    public LibvirtDomain LookupByUuid(Guid uuid) => LookupByUuidCore(uuid, out var error) ?? throw error!;

    /// <summary>The domain with this UUID, or null when libvirt has none (VIR_ERR_NO_DOMAIN).</summary>
    public LibvirtDomain? TryLookupByUuid(Guid uuid)
    {
        var domain = LookupByUuidCore(uuid, out var error);
        return domain is not null || error!.Code == LibvirtErrorCode.NoDomain ? domain : throw error;
    }

    private unsafe LibvirtDomain? LookupByUuidCore(Guid uuid, out LibvirtException? error)
    {
        byte* bytes = stackalloc byte[UuidLength];
        uuid.TryWriteBytes(new Span<byte>(bytes, UuidLength), bigEndian: true, out _);
        var started = AgentMeter.StartLibvirtCall();
        var domain = virDomainLookupByUUID(handle, bytes);
        AgentMeter.EndLibvirtCall(started, "virDomainLookupByUUID");
        if (!domain.IsInvalid)
        {
            error = null;
            return new LibvirtDomain(domain, uuid);
        }

        domain.Dispose();
        error = LibvirtException.FromLastError("virDomainLookupByUUID");
        return null;
    }

    public LibvirtDomain LookupByName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Wrap(AgentMeter.StartLibvirtCall(), virDomainLookupByName(handle, name), "virDomainLookupByName");
    }

    /// <summary>Every domain matching the filter; the caller disposes each.</summary>
    public unsafe IReadOnlyList<LibvirtDomain> ListAllDomains(ListDomainsFlags flags = ListDomainsFlags.All)
    {
        nint* domains = null;
        var count = virConnectListAllDomains(handle, &domains, (uint)flags);
        if (count < 0)
        {
            throw LibvirtException.FromLastError("virConnectListAllDomains");
        }

        try
        {
            var result = new LibvirtDomain[count];
            for (var i = 0; i < count; i++)
            {
                result[i] = new LibvirtDomain(new SafeDomainHandle(domains[i]), uuid: null);
            }

            return result;
        }
        finally
        {
            NativeMemory.Free(domains);
        }
    }

    /// <summary>
    /// One bulk call for the statistics of every matching domain (the reconcile loop's single call).
    /// </summary>
    public unsafe IReadOnlyList<DomainStatsRecord> GetAllDomainStats(DomainStatsTypes stats, ListDomainsFlags filter = ListDomainsFlags.All)
    {
        using var list = QueryAllDomainStats(stats, filter, out var count);
        var result = new DomainStatsRecord[count];
        for (var i = 0; i < count; i++)
        {
            var record = list.Records[i];
            var values = new Dictionary<string, object>(record->NParams, StringComparer.Ordinal);
            for (var p = 0; p < record->NParams; p++)
            {
                var parameter = &record->Params[p];
                values[Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(parameter->Field))] = TypedParameterValue(parameter);
            }

            result[i] = new DomainStatsRecord(LibvirtDomain.ReadUuid(record->Dom), LibvirtDomain.ReadName(record->Dom), values);
        }

        return result;
    }

    /// <summary>
    /// The counters of every running guest (CPU and vCPU time, balloon, per-disk and per-interface
    /// I/O) in one bulk call: a metrics scrape makes this call and no other.
    /// </summary>
    public unsafe IReadOnlyList<GuestStats> GetAllGuestStats()
    {
        using var list = QueryAllDomainStats(DomainStatsTypes.CpuTotal | DomainStatsTypes.Balloon | DomainStatsTypes.Vcpu | DomainStatsTypes.Interface | DomainStatsTypes.Block, ListDomainsFlags.Active, out var count);
        var result = new GuestStats[count];
        for (var i = 0; i < count; i++)
        {
            var record = list.Records[i];
            var guest = new GuestStats(LibvirtDomain.ReadUuid(record->Dom), LibvirtDomain.ReadName(record->Dom));
            for (var p = 0; p < record->NParams; p++)
            {
                var parameter = &record->Params[p];
                var field = Encoding.UTF8.GetString(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(parameter->Field));
                if (parameter->Type == 7)
                {
                    guest.Read(field, Marshal.PtrToStringUTF8((nint)parameter->S) ?? string.Empty);
                }
                else
                {
                    guest.Read(field, NumericValue(parameter));
                }
            }

            result[i] = guest;
        }

        return result;
    }

    private SafeDomainStatsRecordListHandle QueryAllDomainStats(DomainStatsTypes stats, ListDomainsFlags filter, out int count)
    {
        var started = AgentMeter.StartLibvirtCall();
        count = virConnectGetAllDomainStats(handle, (uint)stats, out var list, (uint)filter);
        AgentMeter.EndLibvirtCall(started, "virConnectGetAllDomainStats");
        if (count < 0)
        {
            var error = LibvirtException.FromLastError("virConnectGetAllDomainStats");
            list.Dispose();
            throw error;
        }

        return list;
    }

    private static unsafe ulong NumericValue(VirTypedParameter* parameter) => parameter->Type switch
    {
        1 => (ulong)Math.Max(parameter->I, 0),
        2 => parameter->Ui,
        3 => (ulong)Math.Max(parameter->L, 0),
        4 => parameter->Ul,
        5 => parameter->D > 0 ? (ulong)parameter->D : 0,
        6 => parameter->B,
        _ => throw new LibvirtException("virConnectGetAllDomainStats", LibvirtErrorCode.InternalError, LibvirtErrorDomain.None, $"unknown typed parameter type {parameter->Type}"),
    };

    private static unsafe object TypedParameterValue(VirTypedParameter* parameter) => parameter->Type switch
    {
        1 => parameter->I,
        2 => parameter->Ui,
        3 => parameter->L,
        4 => parameter->Ul,
        5 => parameter->D,
        6 => parameter->B != 0,
        7 => Marshal.PtrToStringUTF8((nint)parameter->S) ?? string.Empty,
        _ => throw new LibvirtException("virConnectGetAllDomainStats", LibvirtErrorCode.InternalError, LibvirtErrorDomain.None, $"unknown typed parameter type {parameter->Type}"),
    };

    /// <summary>
    /// Sends this connection's lifecycle, reboot and guest-agent events to <paramref name="writer"/>
    /// from the event-loop thread. The writer must not block (use an unbounded channel).
    /// </summary>
    public unsafe void SubscribeDomainEvents(ChannelWriter<DomainEvent> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        lock (callbackGate)
        {
            delegate* unmanaged<nint, nint, int, int, nint, int> lifecycle = &OnLifecycle;
            delegate* unmanaged<nint, nint, nint, void> reboot = &OnReboot;
            delegate* unmanaged<nint, nint, int, int, nint, void> agent = &OnAgentLifecycle;
            Register(EventIdLifecycle, lifecycle);
            Register(EventIdReboot, reboot);
            Register(EventIdAgentLifecycle, agent);
        }

        void Register(int eventId, void* callback)
        {
            // One GCHandle per registration: libvirt calls the free callback once for each.
            var target = GCHandle.Alloc(writer);
            var id = virConnectDomainEventRegisterAny(handle, 0, eventId, callback, GCHandle.ToIntPtr(target), &FreeGCHandle);
            if (id < 0)
            {
                var error = LibvirtException.FromLastError("virConnectDomainEventRegisterAny");
                target.Free();
                throw error;
            }

            eventCallbackIds.Add(id);
        }
    }

    /// <summary>Calls <paramref name="onClosed"/> (on the event-loop thread) when libvirt closes the connection.</summary>
    public unsafe void OnClosed(Action<ConnectionCloseReason> onClosed)
    {
        ArgumentNullException.ThrowIfNull(onClosed);
        lock (callbackGate)
        {
            if (closeCallbackRegistered)
            {
                throw new InvalidOperationException("A close callback is already registered on this connection.");
            }

            var target = GCHandle.Alloc(onClosed);
            if (virConnectRegisterCloseCallback(handle, &OnCloseCallback, GCHandle.ToIntPtr(target), null) < 0)
            {
                var error = LibvirtException.FromLastError("virConnectRegisterCloseCallback");
                target.Free();
                throw error;
            }

            closeCallbackTarget = target;
            closeCallbackRegistered = true;
        }
    }

    /// <summary>The raw handle, for the domain wrappers of this assembly only.</summary>
    internal SafeConnectHandle Handle => handle;

    public unsafe void Dispose()
    {
        if (handle.IsClosed)
        {
            return;
        }

        lock (callbackGate)
        {
            foreach (var id in eventCallbackIds)
            {
                // On a dead connection deregistration fails; the callbacks die with the connection.
                if (virConnectDomainEventDeregisterAny(handle, id) < 0)
                {
                    virResetLastError();
                }
            }

            eventCallbackIds.Clear();
            if (closeCallbackRegistered)
            {
                if (virConnectUnregisterCloseCallback(handle, &OnCloseCallback) < 0)
                {
                    virResetLastError();
                }

                closeCallbackTarget.Free();
                closeCallbackRegistered = false;
            }
        }

        handle.Dispose();
    }

    /// <param name="started">From <see cref="AgentMeter.StartLibvirtCall"/>, passed before the call (arguments are evaluated left to right).</param>
    private static LibvirtDomain Wrap(long started, SafeDomainHandle domain, string operation)
    {
        AgentMeter.EndLibvirtCall(started, operation);
        if (!domain.IsInvalid)
        {
            return new LibvirtDomain(domain, uuid: null);
        }

        domain.Dispose();
        throw LibvirtException.FromLastError(operation);
    }

    private static void Publish(nint opaque, DomainEvent domainEvent)
    {
        if (GCHandle.FromIntPtr(opaque).Target is ChannelWriter<DomainEvent> writer)
        {
            writer.TryWrite(domainEvent);
        }
    }

    [UnmanagedCallersOnly]
    private static int OnLifecycle(nint conn, nint dom, int eventType, int detail, nint opaque)
    {
        var timestamp = System.Diagnostics.Stopwatch.GetTimestamp();
        Publish(opaque, new DomainEvent(DomainEventKind.Lifecycle, LibvirtDomain.ReadUuid(dom), LibvirtDomain.ReadName(dom), (DomainLifecycleDetail)((eventType << 8) | detail), 0, 0, timestamp));
        return 0;
    }

    [UnmanagedCallersOnly]
    private static void OnReboot(nint conn, nint dom, nint opaque)
    {
        var timestamp = System.Diagnostics.Stopwatch.GetTimestamp();
        Publish(opaque, new DomainEvent(DomainEventKind.Reboot, LibvirtDomain.ReadUuid(dom), LibvirtDomain.ReadName(dom), default, 0, 0, timestamp));
    }

    [UnmanagedCallersOnly]
    private static void OnAgentLifecycle(nint conn, nint dom, int state, int reason, nint opaque)
    {
        var timestamp = System.Diagnostics.Stopwatch.GetTimestamp();
        Publish(opaque, new DomainEvent(DomainEventKind.AgentLifecycle, LibvirtDomain.ReadUuid(dom), LibvirtDomain.ReadName(dom), default, state, reason, timestamp));
    }

    [UnmanagedCallersOnly]
    private static void OnCloseCallback(nint conn, int reason, nint opaque)
    {
        if (GCHandle.FromIntPtr(opaque).Target is Action<ConnectionCloseReason> onClosed)
        {
            try
            {
                onClosed((ConnectionCloseReason)reason);
            }
#pragma warning disable CA1031 // an exception must never unwind into libvirt's event loop
            catch (Exception)
#pragma warning restore CA1031
            {
            }
        }
    }

    [UnmanagedCallersOnly]
    internal static void FreeGCHandle(nint opaque) => GCHandle.FromIntPtr(opaque).Free();
}
