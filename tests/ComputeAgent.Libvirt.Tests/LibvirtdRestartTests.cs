using ComputeAgent.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

[Collection(QemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class LibvirtdRestartTests(QemuHost host)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task After_a_libvirtd_restart_the_session_reconnects_and_events_flow_again()
    {
        host.SkipIfUnavailable();
        await using var session = new LibvirtSession(
            new LibvirtSessionOptions { Uri = QemuHost.Uri, KeepAliveIntervalSeconds = 1, KeepAliveCount = 3 },
            NullLogger<LibvirtSession>.Instance);
        await session.ConnectAsync(CancellationToken.None);
        Assert.Equal(1, session.Generation);
        var first = await session.GetConnectionAsync(CancellationToken.None);

        await using var guest = await BootedGuest.DefineAsync(host, first, "restart");
        guest.Domain.Create();
        await session.Events.WaitForAsync(e => e.Uuid == guest.Instance.Uuid && e.Detail == DomainLifecycleDetail.StartedBooted, Bound, "StartedBooted");
        await EventWaits.WaitForConsoleLineAsync(guest.Instance.ConsoleLogPath, host.Guest.ReadyLine, TimeSpan.FromSeconds(90));

        await LibvirtDaemon.RestartAsync();

        await session.Events.WaitForAsync(e => e.Kind == DomainEventKind.ConnectionLost, Bound, "ConnectionLost");
        await session.Events.WaitForAsync(e => e.Kind == DomainEventKind.ConnectionRestored, Bound, "ConnectionRestored");
        Assert.Equal(2, session.Generation);
        Assert.True(first.IsClosed, "the session closed the connection that libvirtd dropped");

        // The guest lived through the daemon restart, as guests do on a real host.
        var second = await session.GetConnectionAsync(CancellationToken.None);
        Assert.NotSame(first, second);
        using var domain = second.LookupByUuid(guest.Instance.Uuid);
        Assert.Equal(DomainState.Running, domain.GetState().State);

        // And events flow on the new connection's re-registered callbacks.
        domain.Suspend();
        await session.Events.WaitForAsync(e => e.Uuid == guest.Instance.Uuid && e.Detail == DomainLifecycleDetail.SuspendedPaused, Bound, "SuspendedPaused after the restart");
        domain.Resume();
        await session.Events.WaitForAsync(e => e.Uuid == guest.Instance.Uuid && e.Detail == DomainLifecycleDetail.ResumedUnpaused, Bound, "ResumedUnpaused after the restart");
    }
}
