using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Store;

public sealed class InstanceRecordTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);
    private readonly TempDatabase database = new();
    private readonly ManualTime time = new(Start);

    public void Dispose() => database.Dispose();

    private Task<InstanceStore> OpenAsync() => InstanceStore.OpenAsync(database.Path, new InstanceStoreOptions { TimeProvider = time });

    [Fact]
    public async Task Every_column_round_trips()
    {
        await using var store = await OpenAsync();
        var spec = Samples.Maximal(Guid.NewGuid());
        var oldSpec = spec with { Flavor = spec.Flavor with { Name = "m1.small", Vcpus = 2 } };
        var deletedAt = new DateTimeOffset(2025, 3, 4, 12, 0, 0, 500, TimeSpan.FromHours(2));
        await store.CommitAsync(Changes.Create(spec));
        time.Now = Start.AddMinutes(5);

        await store.CommitAsync(new StateChange(spec.Uuid, VmState.Resized, TaskState.ResizeFinish, PowerState.Paused, "resize")
        {
            VmStateBeforeTask = new(VmState.Stopped),
            PreResize = new(new PreResizeState(oldSpec, new Dictionary<string, string> { ["disk"] = "/var/lib/compute-agent/instances/x_resize/disk" })),
            PreRescueXml = new("<domain type='kvm'><name>instance-0001</name></domain>"),
            DeletedAt = new(deletedAt),
        });

        var record = await store.GetInstanceAsync(spec.Uuid);
        Assert.NotNull(record);
        Assert.Equal(spec.Uuid, record.Uuid);
        Assert.Equal(spec.Name, record.Name);
        DeepAssert.Equal(spec, record.Spec);
        Assert.Equal((VmState.Resized, TaskState.ResizeFinish, PowerState.Paused), (record.VmState, record.TaskState, record.PowerState));
        Assert.Equal(Start, record.CreatedAt);
        Assert.Equal(Start.AddMinutes(5), record.UpdatedAt);
        Assert.Equal(VmState.Stopped, record.VmStateBeforeTask);
        Assert.NotNull(record.PreResize);
        DeepAssert.Equal(oldSpec, record.PreResize.Spec);
        Assert.Equal("/var/lib/compute-agent/instances/x_resize/disk", Assert.Single(record.PreResize.SavedFiles).Value);
        Assert.Equal("<domain type='kvm'><name>instance-0001</name></domain>", record.PreRescueXml);
        Assert.Equal(deletedAt, record.DeletedAt);
    }

    [Fact]
    public async Task States_are_stored_as_their_nova_names()
    {
        await using var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);
        await store.CommitAsync(new StateChange(uuid, VmState.SoftDeleted, TaskState.RebootingHard, PowerState.Running, "test") { VmStateBeforeTask = new(VmState.Active) });

        var row = TempDatabase.Scalar(database.Path, $"SELECT vm_state || ',' || task_state || ',' || power_state || ',' || vm_state_before_task FROM instances WHERE uuid = '{uuid}'");

        Assert.Equal("SOFT_DELETED,REBOOTING_HARD,RUNNING,ACTIVE", row);
    }

    [Fact]
    public async Task A_change_that_sets_nothing_optional_keeps_the_columns_and_a_cleared_column_is_null()
    {
        await using var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);
        await store.CommitAsync(new StateChange(uuid, VmState.Rescued, TaskState.None, PowerState.Running, "rescue")
        {
            VmStateBeforeTask = new(VmState.Active),
            PreRescueXml = new("<domain/>"),
        });

        await store.CommitAsync(new StateChange(uuid, VmState.Rescued, TaskState.Unrescuing, PowerState.Running, "unrescue"));
        var kept = await store.GetInstanceAsync(uuid);
        await store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.None, PowerState.Running, "unrescue") { PreRescueXml = new(null), VmStateBeforeTask = new(null) });
        var cleared = await store.GetInstanceAsync(uuid);

        Assert.Equal(("<domain/>", VmState.Active), (kept!.PreRescueXml, kept.VmStateBeforeTask));
        Assert.Equal((null, null), (cleared!.PreRescueXml, cleared.VmStateBeforeTask));
        Assert.Equal("web-1", cleared.Name);
    }

    [Fact]
    public async Task A_new_spec_replaces_the_stored_one_and_its_name()
    {
        await using var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);
        var rebuilt = Samples.Typical(uuid) with { Name = "web-1-rebuilt", Image = Samples.Image() with { Id = "new-image" } };

        await store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.Rebuilding, PowerState.Running, "rebuild") { Spec = rebuilt });
        var record = await store.GetInstanceAsync(uuid);

        Assert.Equal("web-1-rebuilt", record!.Name);
        Assert.Equal("new-image", record.Spec.Image.Id);
    }

    [Fact]
    public async Task Deleted_instances_are_listed_only_when_asked_for()
    {
        await using var store = await OpenAsync();
        var kept = await Changes.CreateAsync(store);
        var deleted = await Changes.CreateAsync(store);
        await store.CommitAsync(new StateChange(deleted, VmState.Deleted, TaskState.None, PowerState.NoState, "delete") { DeletedAt = new(Start) });

        var live = await store.ListInstancesAsync(includeDeleted: false);
        var all = await store.ListInstancesAsync(includeDeleted: true);

        Assert.Equal([kept], live.Select(i => i.Uuid));
        Assert.Equal(new[] { kept, deleted }.Order(), all.Select(i => i.Uuid).Order());
        Assert.Null(await store.GetInstanceAsync(Guid.NewGuid()));
    }

    [Fact]
    public async Task A_fault_is_recorded_with_its_change_and_listed_per_instance()
    {
        await using var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);
        var other = await Changes.CreateAsync(store);
        time.Now = Start.AddSeconds(30);

        await store.CommitAsync(new StateChange(uuid, VmState.Error, TaskState.None, PowerState.NoState, "spawn failed")
        {
            Fault = new Fault("interrupted", "the agent stopped during SPAWNING", "journal: overlay created, domain not defined"),
        });
        await store.CommitAsync(new StateChange(uuid, VmState.Error, TaskState.None, PowerState.NoState, "again") { Fault = new Fault("libvirt", "second") });

        var faults = await store.ListFaultsAsync(uuid);
        Assert.Equal(2, faults.Count);
        Assert.Equal(("interrupted", "the agent stopped during SPAWNING", "journal: overlay created, domain not defined"), (faults[0].Code, faults[0].Message, faults[0].Details));
        Assert.Equal((uuid, Start.AddSeconds(30)), (faults[0].Uuid, faults[0].CreatedAt));
        Assert.Equal(("libvirt", null), (faults[1].Code, faults[1].Details));
        Assert.True(faults[1].Id > faults[0].Id);
        Assert.Empty(await store.ListFaultsAsync(other));
    }

    [Fact]
    public async Task The_journal_is_set_follows_the_step_keeps_its_start_and_is_cleared()
    {
        await using var store = await OpenAsync();
        var uuid = Guid.NewGuid();
        await store.CommitAsync(Changes.Create(Samples.Typical(uuid)) with { Journal = JournalChange.Set(InstanceCommand.Spawn, new Dictionary<string, string>()) });
        time.Now = Start.AddSeconds(1);
        await store.CommitAsync(new StateChange(uuid, VmState.Building, TaskState.Networking, PowerState.NoState, "spawn"));
        var afterStep = Assert.Single(await store.ListJournalAsync());
        time.Now = Start.AddSeconds(2);
        await store.CommitAsync(new StateChange(uuid, VmState.Building, TaskState.Spawning, PowerState.NoState, "spawn")
        {
            Journal = JournalChange.Set(InstanceCommand.Spawn, new Dictionary<string, string> { ["overlay"] = "/var/lib/i/disk", ["tap"] = "tap3f0c1d20-aa" }),
        });
        var afterUpdate = Assert.Single(await store.ListJournalAsync());
        await store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.None, PowerState.Running, "spawn") { Journal = JournalChange.Clear });

        Assert.Equal((uuid, InstanceCommand.Spawn, TaskState.Networking, Start), (afterStep.Uuid, afterStep.Command, afterStep.Step, afterStep.StartedAt));
        Assert.Empty(afterStep.Created);
        Assert.Equal((TaskState.Spawning, Start), (afterUpdate.Step, afterUpdate.StartedAt));
        Assert.Equal(new Dictionary<string, string> { ["overlay"] = "/var/lib/i/disk", ["tap"] = "tap3f0c1d20-aa" }, afterUpdate.Created);
        Assert.Empty(await store.ListJournalAsync());
    }

    [Fact]
    public async Task A_journal_entry_for_another_command_restarts_its_clock()
    {
        await using var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);
        await store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.Pausing, PowerState.Running, "pause") { Journal = JournalChange.Set(InstanceCommand.Pause, new Dictionary<string, string>()) });
        time.Now = Start.AddMinutes(1);

        await store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.Deleting, PowerState.Running, "delete") { Journal = JournalChange.Set(InstanceCommand.Delete, new Dictionary<string, string>()) });
        var entry = Assert.Single(await store.ListJournalAsync());

        Assert.Equal((InstanceCommand.Delete, TaskState.Deleting, Start.AddMinutes(1)), (entry.Command, entry.Step, entry.StartedAt));
    }

    [Fact]
    public async Task A_change_for_an_unknown_instance_without_a_spec_fails_alone()
    {
        await using var store = await OpenAsync();
        var a = Samples.Typical(Guid.NewGuid());
        var c = Samples.Typical(Guid.NewGuid());
        var unknown = Guid.NewGuid();

        // Queued back to back, so they usually share a batch; the valid ones must commit either way.
        var first = store.CommitAsync(Changes.Create(a));
        var bad = store.CommitAsync(new StateChange(unknown, VmState.Active, TaskState.None, PowerState.Running, "stray"));
        var last = store.CommitAsync(Changes.Create(c));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => bad);
        Assert.Contains(unknown.ToString(), error.Message, StringComparison.Ordinal);
        Assert.Equal(await first + 1, await last);
        Assert.Equal(2, (await store.ListInstancesAsync(includeDeleted: true)).Count);
        Assert.Null(await store.GetInstanceAsync(unknown));
    }

    [Fact]
    public async Task A_change_the_database_refuses_fails_alone_and_leaves_nothing_behind()
    {
        await using var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);
        // Stands in for any refusal from SQLite mid-change (constraint, I/O): the fault insert comes after the instance update.
        TempDatabase.Scalar(database.Path, "CREATE TRIGGER refuse_poison BEFORE INSERT ON faults WHEN NEW.code = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");

        // Queued behind a burst, so that the writer takes the poisoned change in a batch with others.
        var before = Enumerable.Range(0, 300).Select(_ => store.CommitAsync(Changes.Create(Samples.Typical(Guid.NewGuid())))).ToList();
        var poisoned = store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.None, PowerState.Running, "poisoned") { Fault = new Fault("poison", "x") });
        var other = store.CommitAsync(Changes.Create(Samples.Typical(Guid.NewGuid())));
        var next = store.CommitAsync(new StateChange(uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown, "stop"));

        await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => poisoned.WaitAsync(TimeSpan.FromSeconds(30)));
        var committed = await Task.WhenAll([.. before, other, next]).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(2, 302).Select(i => (long)i), committed);
        var stop = (await store.ReadEventsAsync(committed[^1] - 1, 10)).Single();
        Assert.Equal((VmState.Building, VmState.Stopped), (stop.OldVmState, stop.NewVmState));
        Assert.Empty(await store.ListFaultsAsync(uuid));
    }

    [Fact]
    public async Task Usage_errors_are_refused_before_anything_is_queued()
    {
        await using var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);

        Assert.Throws<ArgumentException>(() => { _ = store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.None, PowerState.Running, " ")); });
        Assert.Throws<ArgumentException>(() => { _ = store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.None, PowerState.Running, "x") { Journal = JournalChange.Set(InstanceCommand.Pause, new Dictionary<string, string>()) }); });
        Assert.Throws<ArgumentException>(() => { _ = store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.None, PowerState.Running, "x") { Spec = Samples.Typical(Guid.NewGuid()) }); });
        Assert.Throws<ArgumentOutOfRangeException>(() => { _ = store.CommitAsync(new StateChange(uuid, (VmState)99, TaskState.None, PowerState.Running, "x")); });
        Assert.Equal(1, await store.LastSequenceAsync());
    }

    [Fact]
    public async Task A_cancelled_change_writes_nothing_and_a_closed_store_refuses_changes()
    {
        var store = await OpenAsync();
        var uuid = await Changes.CreateAsync(store);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.CommitAsync(new StateChange(uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown, "stop"), cancelled.Token));
        Assert.Equal(VmState.Building, (await store.GetInstanceAsync(uuid))!.VmState);
        await store.DisposeAsync();

        Assert.Throws<ObjectDisposedException>(() => { _ = store.CommitAsync(new StateChange(uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown, "stop")); });
    }
}
