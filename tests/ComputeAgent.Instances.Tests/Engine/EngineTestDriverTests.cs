using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// The engine against libvirt's test:///default (shared in-process state, hence the collection):
/// instances are domains of ours the engine adopts at start, then driven by commands and by
/// changes made behind the engine's back through a second connection.
/// </summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class EngineTestDriverTests : IAsyncLifetime
{
    private const string Uri = "test:///default";
    private readonly LibvirtConnection behindTheBack = LibvirtConnection.Open(Uri);
    private readonly List<Guid> defined = [];
    private EngineHarness harness = null!;

    public async Task InitializeAsync()
    {
        defined.Add(EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: true));
        defined.Add(EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: false));

        // Made by another agent on the same libvirt: its disk is in that agent's instances folder.
        defined.Add(EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: true, disk: "/var/tmp/another-agent/instances/x/disk"));
        harness = await EngineHarness.StartAsync(Uri);
    }

    public async Task DisposeAsync()
    {
        await harness.DisposeAsync();
        DomainCleanup.Remove(Uri, [.. defined]);
        behindTheBack.Dispose();
    }

    [Fact]
    public async Task Domains_of_ours_without_records_are_adopted_from_their_metadata_and_others_are_left_alone()
    {
        var running = harness.Engine.Find(defined[0]);
        var stopped = harness.Engine.Find(defined[1]);
        Assert.NotNull(running);
        Assert.NotNull(stopped);
        Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (running.VmState, running.TaskState, running.PowerState));
        Assert.Equal((VmState.Stopped, PowerState.Shutdown), (stopped.VmState, stopped.PowerState));
        Assert.Equal(Samples.Typical(defined[0]).Flavor.Name, running.Spec.Flavor.Name);
        Assert.Equal("adopted", Assert.Single(await harness.Store.ListFaultsAsync(defined[0])).Code);

        // Another agent's guest (its disk in another instances folder) is left to that agent.
        Assert.Null(harness.Engine.Find(defined[2]));

        // The driver's own "test" domain carries no agent metadata: not ours.
        using var test = behindTheBack.LookupByName("test");
        Assert.Null(harness.Engine.Find(test.Uuid));
        Assert.Equal(harness.Engine.List().Count, (await harness.Store.ListInstancesAsync(includeDeleted: false)).Count);
    }

    [Fact]
    public async Task Commands_answer_at_once_with_the_task_state_set_then_finish_as_the_table_says()
    {
        var uuid = defined[0];
        var accepted = await harness.Engine.SubmitAsync(uuid, InstanceCommand.Pause, CancellationToken.None);
        Assert.Equal((VmState.Active, TaskState.Pausing), (accepted.VmState, accepted.TaskState));
        await harness.WaitForAsync(uuid, VmState.Paused, TaskState.None, PowerState.Paused);
        using (var domain = behindTheBack.LookupByUuid(uuid))
        {
            Assert.Equal(DomainState.Paused, domain.GetState().State);
        }

        await Submit(uuid, InstanceCommand.Unpause, VmState.Active, PowerState.Running);
        await Submit(uuid, InstanceCommand.Suspend, VmState.Suspended, PowerState.Suspended);
        await Submit(uuid, InstanceCommand.Resume, VmState.Active, PowerState.Running);
        await Submit(uuid, InstanceCommand.Stop, VmState.Stopped, PowerState.Shutdown);
        await Submit(uuid, InstanceCommand.Start, VmState.Active, PowerState.Running);
        await Submit(uuid, InstanceCommand.RebootHard, VmState.Active, PowerState.Running);
        await Submit(uuid, InstanceCommand.Delete, VmState.Deleted, PowerState.NoState);
        Assert.Null(behindTheBack.TryLookupByUuid(uuid));
        Assert.DoesNotContain(harness.Engine.List(), r => r.Uuid == uuid);

        // Every change is in the event log, in order, with no gap.
        var events = await harness.Store.ReadEventsAsync(0, 10_000);
        var seqs = events.Select(e => e.Seq).ToList();
        Assert.Equal(Enumerable.Range((int)seqs[0], seqs.Count).Select(i => (long)i), seqs);
        var mine = events.Where(e => e.Uuid == uuid).Select(e => (e.NewVmState, e.NewTaskState)).ToList();
        Assert.Contains((VmState.Active, TaskState.Pausing), mine);
        Assert.Contains((VmState.Stopped, TaskState.PoweringOn), mine);
        Assert.Equal((VmState.Deleted, TaskState.None), mine[^1]);
    }

    [Fact]
    public async Task A_refused_command_names_the_state_and_changes_nothing()
    {
        var uuid = defined[1];
        var before = await harness.Store.LastSequenceAsync();
        var refused = await Assert.ThrowsAsync<InstanceCommandRefusedException>(() => harness.Engine.SubmitAsync(uuid, InstanceCommand.Resume, CancellationToken.None));
        Assert.Contains("STOPPED", refused.Message, StringComparison.Ordinal);
        Assert.Contains("allowed now", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, await harness.Store.LastSequenceAsync());
        Assert.Equal(VmState.Stopped, harness.Engine.Find(uuid)!.VmState);

        await Assert.ThrowsAsync<InstanceNotFoundException>(() => harness.Engine.SubmitAsync(Guid.NewGuid(), InstanceCommand.Start, CancellationToken.None));
        var resumeOk = defined[0];
        var noTarget = await Assert.ThrowsAsync<Model.InvalidInstanceSpecException>(() => harness.Engine.SubmitAsync(resumeOk, InstanceCommand.Snapshot, CancellationToken.None));
        Assert.Equal("name", noTarget.Field);
        var noPassword = await Assert.ThrowsAsync<Model.InvalidInstanceSpecException>(() => harness.Engine.SubmitAsync(resumeOk, InstanceCommand.SetAdminPassword, CancellationToken.None));
        Assert.Equal("admin_password", noPassword.Field);
        var noImage = await Assert.ThrowsAsync<Model.InvalidInstanceSpecException>(() => harness.Engine.SubmitAsync(resumeOk, InstanceCommand.Rebuild, CancellationToken.None));
        Assert.Equal("image_id", noImage.Field);
        Assert.Equal(before, await harness.Store.LastSequenceAsync());
    }

    [Fact]
    public async Task Changes_behind_the_agents_back_move_power_state_and_vm_state_as_power_sync_rules_say()
    {
        var uuid = defined[0];
        using var domain = behindTheBack.LookupByUuid(uuid);

        domain.Suspend(); // someone ran virsh suspend
        var paused = await harness.WaitForAsync(uuid, VmState.Paused, TaskState.None, PowerState.Paused);
        Assert.StartsWith("libvirt event", paused.Cause, StringComparison.Ordinal);

        domain.Resume();
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);

        domain.Shutdown(); // the guest powered itself off
        await harness.WaitForAsync(uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown);

        domain.Create(); // someone ran virsh start
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);

        domain.Destroy();
        domain.Undefine(); // the domain vanished
        await harness.WaitForAsync(uuid, VmState.Error, TaskState.None, PowerState.NoState);
        Assert.Contains(await harness.Store.ListFaultsAsync(uuid), f => f.Code == "power_sync");
    }

    [Fact]
    public async Task A_pause_interrupted_by_a_crash_settles_to_what_libvirt_shows_on_the_next_start()
    {
        var uuid = defined[0];
        await harness.RestartAsync(async store =>
        {
            // What a SIGKILL right after libvirt paused the guest leaves: PAUSING journaled, guest paused.
            await store.CommitAsync(new ComputeAgent.Instances.Store.StateChange(uuid, VmState.Active, TaskState.Pausing, PowerState.Running, "pause accepted")
            {
                Journal = ComputeAgent.Instances.Store.JournalChange.Set(InstanceCommand.Pause, new Dictionary<string, string>()),
            });
            using var domain = behindTheBack.LookupByUuid(uuid);
            domain.Suspend();
        });

        var record = harness.Engine.Find(uuid)!;
        Assert.Equal((VmState.Paused, TaskState.None, PowerState.Paused), (record.VmState, record.TaskState, record.PowerState));
        Assert.Empty(await harness.Store.ListJournalAsync());
        Assert.Contains(await harness.Store.ListFaultsAsync(uuid), f => f.Code == "interrupted");

        // The pause was recorded as coming from ACTIVE, so unpause goes back there.
        await Submit(uuid, InstanceCommand.Unpause, VmState.Active, PowerState.Running);
    }

    [Fact]
    public async Task A_record_whose_domain_vanished_while_the_agent_was_down_goes_to_error()
    {
        var uuid = defined[1];
        await harness.RestartAsync(_ =>
        {
            using var domain = behindTheBack.LookupByUuid(uuid);
            domain.Undefine();
            return Task.CompletedTask;
        });

        var record = harness.Engine.Find(uuid)!;
        Assert.Equal((VmState.Error, PowerState.NoState), (record.VmState, record.PowerState));
    }

    [Fact]
    public async Task Stop_asks_the_guest_first_and_a_zero_graceful_timeout_destroys_at_once()
    {
        // Nova's power_off(timeout=0), its clean_shutdown=False, is a destroy without the ACPI request.
        var uuid = defined[0];
        await Submit(uuid, InstanceCommand.Stop, VmState.Stopped, PowerState.Shutdown);
        Assert.Equal(DomainShutoffReason.Shutdown, ShutoffReason(uuid));

        await Submit(uuid, InstanceCommand.Start, VmState.Active, PowerState.Running);
        await Submit(uuid, InstanceCommand.Stop, VmState.Stopped, PowerState.Shutdown, new CommandInput { GracefulStopTimeout = TimeSpan.Zero });
        Assert.Equal(DomainShutoffReason.Destroyed, ShutoffReason(uuid));
    }

    private DomainShutoffReason ShutoffReason(Guid uuid)
    {
        using var domain = behindTheBack.LookupByUuid(uuid);
        return domain.GetState().ShutoffReason;
    }

    private async Task Submit(Guid uuid, InstanceCommand command, VmState vm, PowerState power, CommandInput? input = null)
    {
        var accepted = await harness.Engine.SubmitAsync(uuid, command, input ?? CommandInput.None, CancellationToken.None);
        Assert.NotEqual(TaskState.None, accepted.TaskState);
        await harness.WaitForAsync(uuid, vm, TaskState.None, power);
    }
}
