using System.Threading.Channels;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

[Collection(QemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class QemuLifecycleTests : IDisposable
{
    // Bounds for a hung guest under TCG on a loaded 2-core machine, not speed assertions.
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(60);

    private readonly QemuHost host;
    private readonly LibvirtConnection? openConnection;
    private readonly Channel<DomainEvent> events = Channel.CreateUnbounded<DomainEvent>();

    public QemuLifecycleTests(QemuHost host)
    {
        this.host = host;
        openConnection = host.SkipReason is null ? LibvirtConnection.Open(QemuHost.Uri) : null;
        openConnection?.SubscribeDomainEvents(events.Writer);
    }

    private LibvirtConnection connection => openConnection ?? throw new InvalidOperationException("no libvirtd: the test should have been skipped");

    public void Dispose() => openConnection?.Dispose();

    [SkippableFact]
    public async Task A_real_guest_walks_its_whole_lifecycle_with_state_and_events_at_each_step()
    {
        host.SkipIfUnavailable();
        await using var guest = await BootedGuest.DefineAsync(host, connection, "lifecycle");
        var domain = guest.Domain;
        var uuid = guest.Instance.Uuid;
        var console = guest.Instance.ConsoleLogPath;
        Assert.Equal(uuid, domain.Uuid);
        await ExpectEvent(uuid, DomainLifecycleDetail.DefinedAdded);
        Assert.Equal(DomainState.Shutoff, domain.GetState().State);

        domain.Create();
        await ExpectEvent(uuid, DomainLifecycleDetail.StartedBooted);
        Assert.Equal(DomainState.Running, domain.GetState().State);
        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot);

        domain.Suspend();
        await ExpectEvent(uuid, DomainLifecycleDetail.SuspendedPaused);
        Assert.Equal(new DomainStateInfo(DomainState.Paused, (int)DomainPausedReason.User), domain.GetState());

        domain.Resume();
        await ExpectEvent(uuid, DomainLifecycleDetail.ResumedUnpaused);
        Assert.Equal(DomainState.Running, domain.GetState().State);

        domain.ManagedSave();
        await ExpectEvent(uuid, DomainLifecycleDetail.StoppedSaved);
        Assert.Equal(new DomainStateInfo(DomainState.Shutoff, (int)DomainShutoffReason.Saved), domain.GetState());
        Assert.True(domain.HasManagedSaveImage());

        domain.Create();
        await ExpectEvent(uuid, DomainLifecycleDetail.StartedRestored);
        Assert.Equal(DomainState.Running, domain.GetState().State);
        Assert.False(domain.HasManagedSaveImage());

        // Graceful: the ACPI power button reaches the guest's acpid, which powers off.
        domain.Shutdown(DomainShutdownFlags.AcpiPowerButton);
        await ExpectEvent(uuid, DomainLifecycleDetail.StoppedShutdown);
        Assert.Equal(new DomainStateInfo(DomainState.Shutoff, (int)DomainShutoffReason.Shutdown), domain.GetState());
        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.PowerOffLine, Step);

        domain.Create();
        await ExpectEvent(uuid, DomainLifecycleDetail.StartedBooted);
        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot);

        domain.Destroy();
        await ExpectEvent(uuid, DomainLifecycleDetail.StoppedDestroyed);
        Assert.Equal(new DomainStateInfo(DomainState.Shutoff, (int)DomainShutoffReason.Destroyed), domain.GetState());

        domain.Undefine();
        await ExpectEvent(uuid, DomainLifecycleDetail.UndefinedRemoved);
        Assert.Null(connection.TryLookupByUuid(uuid));
    }

    [SkippableFact]
    public async Task Start_paused_holds_the_guest_until_resumed_and_wrong_state_calls_are_refused_by_qemu()
    {
        host.SkipIfUnavailable();
        await using var guest = await BootedGuest.DefineAsync(host, connection, "paused");
        var domain = guest.Domain;
        var uuid = guest.Instance.Uuid;
        await ExpectEvent(uuid, DomainLifecycleDetail.DefinedAdded);

        var refused = Assert.Throws<LibvirtException>(domain.Suspend);
        Assert.Equal(LibvirtErrorCode.OperationInvalid, refused.Code);
        Assert.Contains("not running", refused.LibvirtMessage, StringComparison.Ordinal);

        domain.Create(DomainCreateFlags.StartPaused);
        await ExpectEvent(uuid, DomainLifecycleDetail.StartedBooted);
        await ExpectEvent(uuid, DomainLifecycleDetail.SuspendedPaused);
        Assert.Equal(DomainState.Paused, domain.GetState().State);

        // Paused before its first instruction: the guest cannot have printed anything yet.
        var text = File.Exists(guest.Instance.ConsoleLogPath) ? await File.ReadAllTextAsync(guest.Instance.ConsoleLogPath) : string.Empty;
        Assert.DoesNotContain(host.Guest.ReadyLine, text, StringComparison.Ordinal);

        Assert.Equal(LibvirtErrorCode.OperationInvalid, Assert.Throws<LibvirtException>(() => domain.Create()).Code);

        domain.Resume();
        await ExpectEvent(uuid, DomainLifecycleDetail.ResumedUnpaused);
        await EventWaits.WaitForConsoleLineAsync(guest.Instance.ConsoleLogPath, host.Guest.ReadyLine, Boot);
        Assert.Equal(LibvirtErrorCode.OperationInvalid, Assert.Throws<LibvirtException>(domain.Resume).Code);

        var info = domain.GetInfo();
        Assert.Equal(DomainState.Running, info.State);
        Assert.Equal(1, info.VirtualCpus);
        Assert.Equal(256UL * 1024, info.MaxMemoryKiB);
        Assert.True(info.CpuTimeNs > 0);
        var stats = domain.GetBlockStats("vda");
        Assert.True(stats.ReadRequests > 0, "the guest booted from vda, so it has read from it");
    }

    private async Task ExpectEvent(Guid uuid, DomainLifecycleDetail expected) =>
        await events.Reader.WaitForAsync(e => e.Kind == DomainEventKind.Lifecycle && e.Uuid == uuid && e.Detail == expected, Step, $"{expected} for {uuid}");
}
