using System.Threading.Channels;
using ComputeAgent.Instances.Store;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// Fans every committed state change out to the watchers (gRPC WatchInstances, the controller link).
/// Each watcher has its own bounded channel; one that falls more than <see cref="Capacity"/> events
/// behind is completed with <see cref="WatcherTooSlowException"/> and resumes from the event log by
/// sequence number, so a slow watcher never holds the engine up.
/// </summary>
public sealed class EventBroadcast
{
    public const int Capacity = 10_000;
    private readonly Lock gate = new();
    private readonly List<Channel<EventRecord>> watchers = [];

    public ChannelReader<EventRecord> Subscribe(CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<EventRecord>(new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = false });
        lock (gate)
        {
            watchers.Add(channel);
        }

        cancellationToken.Register(() => Remove(channel, null));
        return channel.Reader;
    }

    public void Publish(EventRecord record)
    {
        lock (gate)
        {
            for (var i = watchers.Count - 1; i >= 0; i--)
            {
                var channel = watchers[i];
                if (!channel.Writer.TryWrite(record))
                {
                    watchers.RemoveAt(i);
                    channel.Writer.TryComplete(new WatcherTooSlowException(record.Seq));
                }
            }
        }
    }

    private void Remove(Channel<EventRecord> channel, Exception? error)
    {
        lock (gate)
        {
            watchers.Remove(channel);
        }

        channel.Writer.TryComplete(error);
    }
}

/// <summary>The watcher fell too far behind; it should read the event log from its last sequence number.</summary>
public sealed class WatcherTooSlowException : Exception
{
    public WatcherTooSlowException(long seq)
        : base($"the watcher fell more than {EventBroadcast.Capacity} events behind at sequence {seq}; resume from the event log")
    {
    }

    public WatcherTooSlowException()
    {
    }

    public WatcherTooSlowException(string message)
        : base(message)
    {
    }

    public WatcherTooSlowException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
