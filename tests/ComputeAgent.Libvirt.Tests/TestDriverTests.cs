using System.Threading.Channels;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

[Collection(TestDriverCollection.Name)]
public sealed class TestDriverTests : IDisposable
{
    private static readonly TimeSpan EventTimeout = TimeSpan.FromSeconds(10);
    private readonly LibvirtConnection connection = LibvirtConnection.Open(TestDriverCollection.Uri);
    private readonly Channel<DomainEvent> events = Channel.CreateUnbounded<DomainEvent>();

    public TestDriverTests() => connection.SubscribeDomainEvents(events.Writer);

    public void Dispose() => connection.Dispose();

    [Fact]
    public void Host_calls_answer_with_the_test_drivers_fixed_node()
    {
        // The test driver describes a fixed 2-socket host of 16 CPUs with 3 GiB (libvirt's test_driver.c defaults).
        var node = connection.GetNodeInfo();
        Assert.Equal(16, node.Cpus);
        Assert.Equal(2, node.NumaNodes);
        Assert.Equal(3UL * 1024 * 1024, node.MemoryKiB);
        Assert.Contains("<capabilities>", connection.GetCapabilities(), StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(connection.GetHostname()));
        Assert.True(connection.GetLibVersion() >= 9_000_000, "libvirt 9.0 or newer is what Debian 12 ships");
        Assert.True(connection.IsAlive);
        Assert.False(connection.SetKeepAlive(5, 3), "a local driver has no keepalive");
    }

    [Fact]
    public async Task Full_lifecycle_reads_back_the_state_and_receives_each_event()
    {
        var uuid = Guid.NewGuid();
        var name = $"lifecycle-{uuid:N}";
        using var domain = connection.DefineXml(TestDriverCollection.DomainXml(name, uuid));
        Assert.Equal(DomainLifecycleDetail.DefinedAdded, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);
        Assert.Equal(uuid, domain.Uuid);
        Assert.Equal(name, domain.Name);
        Assert.Equal(DomainState.Shutoff, domain.GetState().State);

        domain.Create();
        Assert.Equal(DomainLifecycleDetail.StartedBooted, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);
        Assert.Equal(DomainState.Running, domain.GetState().State);
        Assert.True(domain.IsActive);

        domain.Suspend();
        Assert.Equal(DomainLifecycleDetail.SuspendedPaused, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);
        Assert.Equal(new DomainStateInfo(DomainState.Paused, (int)DomainPausedReason.User), domain.GetState());

        domain.Resume();
        Assert.Equal(DomainLifecycleDetail.ResumedUnpaused, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);

        domain.ManagedSave();
        Assert.Equal(DomainLifecycleDetail.StoppedSaved, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);
        Assert.Equal(DomainShutoffReason.Saved, domain.GetState().ShutoffReason);
        Assert.True(domain.HasManagedSaveImage());

        // The test driver reports a restore as StartedBooted; QEMU says StartedRestored (QemuLifecycleTests).
        domain.Create();
        Assert.Equal(DomainLifecycleEventType.Started, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Lifecycle);
        Assert.False(domain.HasManagedSaveImage());

        domain.Shutdown();
        Assert.Equal(DomainLifecycleDetail.StoppedShutdown, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);
        Assert.Equal(DomainShutoffReason.Shutdown, domain.GetState().ShutoffReason);

        domain.Create();
        Assert.Equal(DomainLifecycleDetail.StartedBooted, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);

        domain.Destroy();
        Assert.Equal(DomainLifecycleDetail.StoppedDestroyed, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);
        Assert.Equal(DomainShutoffReason.Destroyed, domain.GetState().ShutoffReason);

        domain.Undefine();
        Assert.Equal(DomainLifecycleDetail.UndefinedRemoved, (await events.Reader.NextLifecycleAsync(uuid, EventTimeout)).Detail);
        Assert.Null(connection.TryLookupByUuid(uuid));
    }

    [Fact]
    public void Lookup_by_uuid_and_by_name_find_the_same_domain()
    {
        var uuid = Guid.NewGuid();
        using var defined = connection.DefineXml(TestDriverCollection.DomainXml($"lookup-{uuid:N}", uuid));
        try
        {
            using var byUuid = connection.LookupByUuid(uuid);
            using var byName = connection.LookupByName($"lookup-{uuid:N}");
            Assert.Equal(uuid, byName.Uuid);
            Assert.Equal(byName.Name, byUuid.Name);
        }
        finally
        {
            defined.Undefine();
        }
    }

    [Fact]
    public void Unknown_uuid_is_libvirts_no_domain_error()
    {
        var missing = Guid.NewGuid();
        var error = Assert.Throws<LibvirtException>(() => connection.LookupByUuid(missing));
        Assert.Equal(LibvirtErrorCode.NoDomain, error.Code);
        Assert.Equal("virDomainLookupByUUID", error.Operation);
        Assert.Contains("not found", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Null(connection.TryLookupByUuid(missing));
        Assert.Equal(LibvirtErrorCode.NoDomain, Assert.Throws<LibvirtException>(() => connection.LookupByName("no-such-domain")).Code);
    }

    [Fact]
    public void Malformed_xml_is_libvirts_xml_error_and_defines_nothing()
    {
        var before = connection.ListAllDomains().Count;
        var error = Assert.Throws<LibvirtException>(() => connection.DefineXml("<domain type='test'><name>broken</name"));
        Assert.Equal(LibvirtErrorCode.XmlDetail, error.Code);
        Assert.Contains("expected '>'", error.LibvirtMessage, StringComparison.Ordinal);
        Assert.Equal(before, connection.ListAllDomains().Count);
    }

    [Fact]
    public void Operations_in_the_wrong_state_surface_libvirts_code_and_change_nothing()
    {
        // The test driver answers some wrong-state calls with its own internal error and others
        // with OPERATION_INVALID (QEMU answers OPERATION_INVALID throughout: QemuLifecycleTests).
        var uuid = Guid.NewGuid();
        using var domain = connection.DefineXml(TestDriverCollection.DomainXml($"wrong-state-{uuid:N}", uuid));
        try
        {
            AssertRefused(domain.Suspend, "virDomainSuspend", LibvirtErrorCode.InternalError, "not running");
            AssertRefused(domain.Resume, "virDomainResume", LibvirtErrorCode.InternalError, "not paused");
            AssertRefused(() => domain.Destroy(), "virDomainDestroyFlags", LibvirtErrorCode.OperationInvalid, "not running");
            AssertRefused(domain.ManagedSave, "virDomainManagedSave", LibvirtErrorCode.OperationInvalid, "not running");
            Assert.Equal(DomainState.Shutoff, domain.GetState().State);

            domain.Create();
            AssertRefused(domain.Resume, "virDomainResume", LibvirtErrorCode.InternalError, "not paused");
            AssertRefused(() => domain.Create(), "virDomainCreateWithFlags", LibvirtErrorCode.InternalError, "already running");
            Assert.Equal(DomainState.Running, domain.GetState().State);
        }
        finally
        {
            if (domain.IsActive)
            {
                domain.Destroy();
            }

            domain.Undefine();
        }

        static void AssertRefused(Action call, string operation, LibvirtErrorCode code, string why)
        {
            var error = Assert.Throws<LibvirtException>(call);
            Assert.Equal(operation, error.Operation);
            Assert.Equal(code, error.Code);
            Assert.Contains(why, error.LibvirtMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Metadata_element_round_trips_in_our_namespace_and_reads_null_when_absent()
    {
        const string ns = "https://compute-agent.example/xmlns/instance/1.0";
        var uuid = Guid.NewGuid();
        using var domain = connection.DefineXml(TestDriverCollection.DomainXml($"metadata-{uuid:N}", uuid));
        try
        {
            Assert.Null(domain.GetMetadata(DomainMetadataType.Element, ns));
            domain.SetMetadata(DomainMetadataType.Element, "<instance><flavor>m1.small &amp; more</flavor></instance>", "agent", ns);
            var stored = domain.GetMetadata(DomainMetadataType.Element, ns);
            Assert.NotNull(stored);
            Assert.Contains("<flavor>m1.small &amp; more</flavor>", stored, StringComparison.Ordinal);
            Assert.Contains(ns, domain.GetXmlDesc(), StringComparison.Ordinal);
            domain.SetMetadata(DomainMetadataType.Element, null, null, ns);
            Assert.Null(domain.GetMetadata(DomainMetadataType.Element, ns));
        }
        finally
        {
            domain.Undefine();
        }
    }

    [Fact]
    public void Vcpus_and_memory_changes_show_in_the_persistent_definition()
    {
        var uuid = Guid.NewGuid();
        using var domain = connection.DefineXml(TestDriverCollection.DomainXml($"resize-{uuid:N}", uuid, memoryMiB: 512));
        try
        {
            domain.SetMemory(256 * 1024, DomainModificationFlags.Config);
            Assert.Equal(256UL * 1024, domain.GetInfo().MemoryKiB);
            Assert.Equal(512UL * 1024, domain.GetInfo().MaxMemoryKiB);
            domain.SetVcpus(2, DomainModificationFlags.Config | DomainModificationFlags.Maximum);
            domain.SetVcpus(2, DomainModificationFlags.Config);
            Assert.Equal(2, domain.GetInfo().VirtualCpus);
        }
        finally
        {
            domain.Undefine();
        }
    }

    [Fact]
    public void Bulk_stats_report_each_domains_state_in_one_call()
    {
        var running = Guid.NewGuid();
        var stopped = Guid.NewGuid();
        using var a = connection.DefineXml(TestDriverCollection.DomainXml($"stats-run-{running:N}", running));
        using var b = connection.DefineXml(TestDriverCollection.DomainXml($"stats-off-{stopped:N}", stopped));
        a.Create();
        try
        {
            var stats = connection.GetAllDomainStats(DomainStatsTypes.State).ToDictionary(s => s.Uuid);
            Assert.Equal(DomainState.Running, stats[running].State?.State);
            Assert.Equal(DomainState.Shutoff, stats[stopped].State?.State);
            Assert.Equal($"stats-off-{stopped:N}", stats[stopped].Name);
        }
        finally
        {
            a.Destroy();
            a.Undefine();
            b.Undefine();
        }
    }

    [Fact]
    public void Guest_stats_are_one_timed_call_for_the_running_domains_only()
    {
        var running = Guid.NewGuid();
        var stopped = Guid.NewGuid();
        using var a = connection.DefineXml(TestDriverCollection.DomainXml($"guest-run-{running:N}", running));
        using var b = connection.DefineXml(TestDriverCollection.DomainXml($"guest-off-{stopped:N}", stopped));
        a.Create();
        var calls = new List<string>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == AgentMeter.Name && instrument.Name == "libvirt_call_duration_seconds")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        var thread = Environment.CurrentManagedThreadId;
        listener.SetMeasurementEventCallback<double>((_, seconds, tags, _) =>
        {
            // Only this test's calls: other collections call libvirt on their own threads meanwhile.
            if (Environment.CurrentManagedThreadId != thread)
            {
                return;
            }

            Assert.True(seconds >= 0);
            lock (calls)
            {
                calls.Add((string)tags[0].Value!);
            }
        });
        listener.Start();
        try
        {
            var guests = connection.GetAllGuestStats().ToDictionary(g => g.Uuid);
            lock (calls)
            {
                Assert.Equal(["virConnectGetAllDomainStats"], calls);
            }

            // test:///default fills no counter group: the record is there, its counters are not.
            Assert.Equal($"guest-run-{running:N}", guests[running].Name);
            Assert.DoesNotContain(stopped, guests.Keys);
            Assert.Null(guests[running].CpuTimeNs);
            Assert.Empty(guests[running].Disks);
        }
        finally
        {
            a.Destroy();
            a.Undefine();
            b.Undefine();
        }
    }

    [Fact]
    public void A_read_only_connection_reads_but_cannot_change_anything()
    {
        using var readOnly = LibvirtConnection.Open("test:///default", readOnly: true);
        Assert.True(readOnly.IsReadOnly);
        Assert.NotEmpty(readOnly.ListAllDomains());
        var error = Assert.Throws<LibvirtException>(() => readOnly.DefineXml(TestDriverCollection.DomainXml("read-only", Guid.NewGuid())));
        Assert.Equal(LibvirtErrorCode.OperationDenied, error.Code);
    }
}
