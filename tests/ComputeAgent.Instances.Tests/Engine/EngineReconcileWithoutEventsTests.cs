using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// The periodic reconcile on its own (issue 19 item 6): libvirt's events are dropped before the
/// engine sees them, as when they are lost, and the domain changes behind the agent's back.
/// </summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class EngineReconcileWithoutEventsTests : IAsyncLifetime
{
    private const string Uri = DomainXmlLibvirtCollection.Uri;
    private readonly LibvirtConnection behindTheBack = LibvirtConnection.Open(Uri);
    private Guid uuid;

    public Task InitializeAsync()
    {
        uuid = EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: true);
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        DomainCleanup.Remove(Uri, uuid);
        behindTheBack.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Without_events_the_reconcile_pass_alone_moves_the_instance_to_what_libvirt_shows()
    {
        await using var harness = await EngineHarness.StartAsync(Uri, new EngineOptions { DropsDomainEvents = true, ReconcileInterval = TimeSpan.FromMilliseconds(200) });
        Assert.Equal((VmState.Active, PowerState.Running), (harness.Engine.Find(uuid)!.VmState, harness.Engine.Find(uuid)!.PowerState));
        using var domain = behindTheBack.LookupByUuid(uuid);

        var passes = harness.Engine.ReconcilePasses;
        domain.Suspend(); // virsh suspend, its event lost
        var paused = await harness.WaitForAsync(uuid, VmState.Paused, TaskState.None, PowerState.Paused);
        Assert.Equal("reconcile", paused.Cause);
        // The pass that committed the change counts itself once its whole pass is over, a moment
        // after the commit the wait above saw: wait for that count (bounded), not for the next pass.
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (harness.Engine.ReconcilePasses <= passes && !bound.IsCancellationRequested)
        {
            await Task.Delay(10);
        }

        Assert.True(harness.Engine.ReconcilePasses > passes, "a reconcile pass ran between the change and the instance following it");

        domain.Destroy(); // QEMU gone while paused
        var stopped = await harness.WaitForAsync(uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown);
        Assert.Equal("reconcile", stopped.Cause);

        domain.Undefine(); // the domain vanished
        var gone = await harness.WaitForAsync(uuid, VmState.Error, TaskState.None, PowerState.NoState);
        Assert.Equal("reconcile", gone.Cause);
        var fault = (await harness.Store.ListFaultsAsync(uuid))[^1];
        Assert.Equal(("power_sync", "libvirt shows the guest NOSTATE while the instance was STOPPED (reconcile); nothing the agent did explains it"), (fault.Code, fault.Message));
    }
}
