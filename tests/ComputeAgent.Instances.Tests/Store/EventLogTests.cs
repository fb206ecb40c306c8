using System.Collections.Concurrent;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using Microsoft.Data.Sqlite;
using Xunit;

namespace ComputeAgent.Instances.Tests.Store;

public sealed class EventLogTests : IDisposable
{
    private readonly TempDatabase database = new();

    public void Dispose() => database.Dispose();

    [Fact]
    public async Task Creating_an_instance_appends_an_event_with_no_old_states()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);
        var spec = Samples.Typical(Guid.NewGuid());

        var seq = await store.CommitAsync(Changes.Create(spec, cause: "spawn requested"));
        var e = Assert.Single(await store.ReadEventsAsync(0, 10));

        Assert.Equal(1, seq);
        Assert.Equal(new EventRecord(1, spec.Uuid, null, VmState.Building, null, TaskState.Scheduling, null, PowerState.NoState, "spawn requested", e.CreatedAt), e);
    }

    [Fact]
    public async Task A_change_appends_old_and_new_states_and_its_cause()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);
        var uuid = await Changes.CreateAsync(store);

        var seq = await store.CommitAsync(new StateChange(uuid, VmState.Building, TaskState.Networking, PowerState.Running, "spawn: networking"));
        var e = (await store.ReadEventsAsync(1, 10)).Single();

        Assert.Equal((2L, uuid), (seq, e.Uuid));
        Assert.Equal((VmState.Building, VmState.Building), (e.OldVmState, e.NewVmState));
        Assert.Equal((TaskState.Scheduling, TaskState.Networking), (e.OldTaskState, e.NewTaskState));
        Assert.Equal((PowerState.NoState, PowerState.Running), (e.OldPowerState, e.NewPowerState));
        Assert.Equal("spawn: networking", e.Cause);
    }

    [Fact]
    public async Task No_event_when_the_states_did_not_change_but_the_rest_is_committed()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);
        var uuid = await Changes.CreateAsync(store);

        var seq = await store.CommitAsync(new StateChange(uuid, VmState.Building, TaskState.Scheduling, PowerState.NoState, "journal only")
        {
            Journal = JournalChange.Set(InstanceCommand.Spawn, new Dictionary<string, string> { ["overlay"] = "/x" }),
            Fault = new Fault("retry", "image download retried"),
        });

        Assert.Equal(0, seq);
        Assert.Equal(1, await store.LastSequenceAsync());
        Assert.Single(await store.ReadEventsAsync(0, 10));
        Assert.Single(await store.ListJournalAsync());
        Assert.Single(await store.ListFaultsAsync(uuid));
    }

    [Fact]
    public async Task Eight_concurrent_writers_get_strictly_increasing_gapless_seqs_that_match_their_rows()
    {
        const int writers = 8;
        const int commitsEach = 500;
        await using var store = await InstanceStore.OpenAsync(database.Path);
        var returned = new ConcurrentBag<(long Seq, Guid Uuid, string Cause, PowerState Power)>();

        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var spec = Samples.Typical(Guid.NewGuid());
            returned.Add((await store.CommitAsync(Changes.Create(spec, $"w{w} create")), spec.Uuid, $"w{w} create", PowerState.NoState));
            var previous = 0L;
            for (var i = 0; i < commitsEach; i++)
            {
                var power = i % 2 == 0 ? PowerState.Running : PowerState.Paused;
                var cause = $"w{w} #{i}";
                var seq = await store.CommitAsync(new StateChange(spec.Uuid, VmState.Active, TaskState.None, power, cause));
                Assert.True(seq > previous, $"writer {w}: seq {seq} after {previous}");
                previous = seq;
                returned.Add((seq, spec.Uuid, cause, power));
            }
        })));

        var total = writers * (commitsEach + 1);
        var events = await store.ReadEventsAsync(0, total + 10);
        Assert.Equal(Enumerable.Range(1, total).Select(i => (long)i), returned.Select(r => r.Seq).Order());
        Assert.Equal(Enumerable.Range(1, total).Select(i => (long)i), events.Select(e => e.Seq));
        var bySeq = events.ToDictionary(e => e.Seq);
        foreach (var (seq, uuid, cause, power) in returned)
        {
            Assert.Equal((uuid, cause, power), (bySeq[seq].Uuid, bySeq[seq].Cause, bySeq[seq].NewPowerState));
        }

        Assert.Equal(total, await store.LastSequenceAsync());
    }

    [Fact]
    public async Task Concurrent_changes_share_transactions()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);
        var uuids = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Changes.CreateAsync(store)));
        var before = store.BatchesCommitted;

        var seqs = await Task.WhenAll(Enumerable.Range(0, 2000).Select(i =>
            store.CommitAsync(new StateChange(uuids[i % 100], VmState.Building, (TaskState)(2 + (i / 100 % 4)), PowerState.NoState, "burst"))));

        var batches = store.BatchesCommitted - before;
        Assert.True(batches < 200, $"2000 queued changes took {batches} transactions");
        Assert.Equal(2000, seqs.Distinct().Count());
    }

    [Fact]
    public async Task Events_are_read_in_pages_after_a_seq()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);
        for (var i = 0; i < 10; i++)
        {
            await Changes.CreateAsync(store);
        }

        var page = await store.ReadEventsAsync(3, 4);

        Assert.Equal([4L, 5, 6, 7], page.Select(e => e.Seq));
        Assert.Empty(await store.ReadEventsAsync(10, 4));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.ReadEventsAsync(0, 0));
    }

    [Fact]
    public async Task Pruning_removes_old_events_and_never_reuses_their_seqs()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);
        for (var i = 0; i < 5; i++)
        {
            await Changes.CreateAsync(store);
        }

        var pruned = await store.PruneEventsBeforeAsync(6);
        var last = await store.LastSequenceAsync();
        var next = await Changes.CreateAsync(store);
        var events = await store.ReadEventsAsync(0, 10);

        Assert.Equal((5, 5L), (pruned, last));
        Assert.Equal(6, Assert.Single(events).Seq);
        Assert.Equal(next, events[0].Uuid);
    }

    [Fact]
    public async Task The_database_refuses_an_update_of_an_event()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);
        await Changes.CreateAsync(store);

        var error = Assert.Throws<SqliteException>(() => TempDatabase.Scalar(database.Path, "UPDATE events SET cause = 'rewritten'"));

        Assert.Contains("append-only", error.Message, StringComparison.Ordinal);
        Assert.Equal("spawn", (await store.ReadEventsAsync(0, 1))[0].Cause);
    }
}
