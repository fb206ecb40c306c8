using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// A watcher is unsubscribed when it is disposed, not only when its token is cancelled: a call
/// that returned normally (WaitInstance, a replay-only watch) used to leave its channel subscribed,
/// collecting every later change (up to the broadcast's capacity) for as long as the agent ran.
/// </summary>
public sealed class EventBroadcastTests
{
    private static EventRecord Change(long seq) =>
        new(seq, Guid.NewGuid(), VmState.Active, VmState.Paused, TaskState.Pausing, TaskState.None, PowerState.Running, PowerState.Paused, "pause done", DateTimeOffset.UnixEpoch);

    [Fact]
    public async Task A_disposed_watcher_is_unsubscribed_and_gets_no_later_change()
    {
        var broadcast = new EventBroadcast();
        var kept = broadcast.Subscribe(CancellationToken.None);
        var done = broadcast.Subscribe(CancellationToken.None);
        broadcast.Publish(Change(1));
        done.Dispose();
        broadcast.Publish(Change(2));

        Assert.Equal(1, broadcast.Watchers);
        Assert.Equal(1, (await kept.ReadAsync()).Seq);
        Assert.Equal(2, (await kept.ReadAsync()).Seq);
        Assert.True(done.TryRead(out var first));
        Assert.Equal(1, first.Seq);
        Assert.False(done.TryRead(out _));
        await done.Completion.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_watcher_whose_token_is_cancelled_is_unsubscribed_and_disposing_it_later_is_harmless()
    {
        var broadcast = new EventBroadcast();
        using var stop = new CancellationTokenSource();
        var watcher = broadcast.Subscribe(stop.Token);
        Assert.Equal(1, broadcast.Watchers);

        stop.Cancel();
        Assert.Equal(0, broadcast.Watchers);
        Assert.True(watcher.Completion.IsCompleted);
        watcher.Dispose();
        Assert.Equal(0, broadcast.Watchers);
    }

    [Fact]
    public void Many_calls_that_subscribe_and_dispose_leave_no_watcher_behind()
    {
        var broadcast = new EventBroadcast();
        using var agentLifetime = new CancellationTokenSource();
        for (var i = 0; i < 1000; i++)
        {
            using var call = broadcast.Subscribe(agentLifetime.Token);
            broadcast.Publish(Change(i + 1));
        }

        Assert.Equal(0, broadcast.Watchers);
    }
}
