using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>Soft delete, restore, force delete and the reclaim pass on libvirt's test:///default, with the engine's clock in the test's hand.</summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class EngineSoftDeleteTests : IAsyncLifetime
{
    private const string Uri = "test:///default";
    private static readonly TimeSpan Interval = TimeSpan.FromHours(1);
    private readonly LibvirtConnection behindTheBack = LibvirtConnection.Open(Uri);
    private readonly List<Guid> defined = [];
    private readonly ManualTime clock = new(DateTimeOffset.Parse("2026-11-25T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    public Task InitializeAsync()
    {
        defined.Add(EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: true));
        return Task.CompletedTask;
    }

    public Task DisposeAsync()
    {
        DomainCleanup.Remove(Uri, [.. defined]);
        behindTheBack.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task With_reclaim_interval_zero_a_soft_delete_is_a_delete()
    {
        await using var harness = await EngineHarness.StartAsync(Uri);
        var uuid = defined[0];
        var accepted = await harness.Engine.SubmitAsync(uuid, InstanceCommand.SoftDelete, CancellationToken.None);
        Assert.Equal((VmState.Active, TaskState.Deleting), (accepted.VmState, accepted.TaskState));
        await harness.WaitForAsync(uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        Assert.Null(behindTheBack.TryLookupByUuid(uuid));
    }

    [Fact]
    public async Task A_soft_deleted_instance_is_kept_off_until_restored_and_reclaimed_only_past_the_interval()
    {
        await using var harness = await EngineHarness.StartAsync(Uri, new EngineOptions { ReclaimInstanceInterval = Interval }, time: clock);
        var uuid = defined[0];

        var accepted = await harness.Engine.SubmitAsync(uuid, InstanceCommand.SoftDelete, CancellationToken.None);
        Assert.Equal((VmState.Active, TaskState.SoftDeleting), (accepted.VmState, accepted.TaskState));
        await harness.WaitForAsync(uuid, VmState.SoftDeleted, TaskState.None, PowerState.Shutdown);
        using (var domain = behindTheBack.LookupByUuid(uuid))
        {
            Assert.Equal(DomainState.Shutoff, domain.GetState().State);
        }

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Restore, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.SoftDelete, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.SoftDeleted, TaskState.None, PowerState.Shutdown);

        // Not yet past the interval: the pass leaves it alone.
        clock.Now += Interval - TimeSpan.FromSeconds(1);
        Assert.Equal(0, await harness.Engine.ReclaimAsync(CancellationToken.None));
        Assert.Equal(VmState.SoftDeleted, harness.Engine.Find(uuid)!.VmState);

        clock.Now += TimeSpan.FromSeconds(1);
        Assert.Equal(1, await harness.Engine.ReclaimAsync(CancellationToken.None));
        await harness.WaitForAsync(uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        Assert.Null(behindTheBack.TryLookupByUuid(uuid));
    }

    [Fact]
    public async Task Force_delete_is_only_for_soft_deleted_instances_and_the_table_refuses_restore_elsewhere()
    {
        await using var harness = await EngineHarness.StartAsync(Uri, new EngineOptions { ReclaimInstanceInterval = Interval }, time: clock);
        var uuid = defined[0];
        var refused = await Assert.ThrowsAsync<InstanceCommandRefusedException>(() => harness.Engine.SubmitAsync(uuid, InstanceCommand.ForceDelete, CancellationToken.None));
        Assert.Contains("SOFT_DELETED", refused.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InstanceCommandRefusedException>(() => harness.Engine.SubmitAsync(uuid, InstanceCommand.Restore, CancellationToken.None));

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.SoftDelete, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.SoftDeleted, TaskState.None, PowerState.Shutdown);
        var forced = await harness.Engine.SubmitAsync(uuid, InstanceCommand.ForceDelete, CancellationToken.None);
        Assert.Equal(TaskState.Deleting, forced.TaskState);
        await harness.WaitForAsync(uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        Assert.Null(behindTheBack.TryLookupByUuid(uuid));
    }
}
