using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using Xunit;

namespace ComputeAgent.Instances.Tests.Store;

public sealed class DurabilityTests : IDisposable
{
    private readonly TempDatabase database = new();

    public void Dispose() => database.Dispose();

    /// <summary>An instance mid-resize with a fault and a journal entry: something in every table.</summary>
    private static async Task<Model.InstanceSpec> WriteEverythingAsync(InstanceStore store)
    {
        var spec = Samples.Maximal(Guid.NewGuid());
        await store.CommitAsync(Changes.Create(spec));
        await store.CommitAsync(new StateChange(spec.Uuid, VmState.Active, TaskState.ResizeMigrating, PowerState.Shutdown, "resize")
        {
            VmStateBeforeTask = new(VmState.Active),
            PreResize = new(new PreResizeState(spec, new Dictionary<string, string> { ["disk"] = "/saved/disk" })),
            Journal = JournalChange.Set(InstanceCommand.Resize, new Dictionary<string, string> { ["saved_disk"] = "/saved/disk" }),
            Fault = new Fault("slow", "resize took long"),
        });
        for (var i = 0; i < 200; i++)
        {
            await Changes.CreateAsync(store);
        }

        return spec;
    }

    /// <summary>What <see cref="WriteEverythingAsync"/> wrote, compared with the spec it wrote (not one read-back with another).</summary>
    private static async Task AssertEverythingAsync(InstanceStore store, Model.InstanceSpec written)
    {
        var uuid = written.Uuid;
        var record = await store.GetInstanceAsync(uuid);
        Assert.NotNull(record);
        Assert.Equal((VmState.Active, TaskState.ResizeMigrating, PowerState.Shutdown, VmState.Active), (record.VmState, record.TaskState, record.PowerState, record.VmStateBeforeTask));
        DeepAssert.Equal(written, record.Spec);
        DeepAssert.Equal(written, record.PreResize!.Spec);
        Assert.Equal("/saved/disk", record.PreResize.SavedFiles["disk"]);
        Assert.Equal(202, await store.LastSequenceAsync());
        Assert.Equal(202, (await store.ReadEventsAsync(0, 1000)).Count);
        Assert.Equal(201, (await store.ListInstancesAsync(includeDeleted: false)).Count);
        Assert.Equal("slow", Assert.Single(await store.ListFaultsAsync(uuid)).Code);
        var journal = Assert.Single(await store.ListJournalAsync());
        Assert.Equal((uuid, InstanceCommand.Resize, "/saved/disk"), (journal.Uuid, journal.Command, journal.Created["saved_disk"]));
    }

    [Fact]
    public async Task Everything_is_there_after_closing_and_reopening()
    {
        Model.InstanceSpec written;
        await using (var store = await InstanceStore.OpenAsync(database.Path))
        {
            written = await WriteEverythingAsync(store);
        }

        await using var reopened = await InstanceStore.OpenAsync(database.Path);
        await AssertEverythingAsync(reopened, written);
        Assert.Equal(203, await reopened.CommitAsync(new StateChange(written.Uuid, VmState.Resized, TaskState.None, PowerState.Running, "resize")));
    }

    [Fact]
    public async Task Committed_changes_survive_a_kill_in_the_wal()
    {
        var copy = database.NewPath();
        await using var store = await InstanceStore.OpenAsync(database.Path);
        var written = await WriteEverythingAsync(store);

        // What a SIGKILL leaves: the files as they are, the store never closed or checkpointed.
        Assert.True(new FileInfo(database.Path + "-wal").Length > 0, "the commits should still be in the WAL");
        File.Copy(database.Path, copy);
        File.Copy(database.Path + "-wal", copy + "-wal");

        await using var recovered = await InstanceStore.OpenAsync(copy);
        await AssertEverythingAsync(recovered, written);
    }
}
