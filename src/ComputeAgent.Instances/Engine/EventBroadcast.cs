using System.Diagnostics.CodeAnalysis;
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

    /// <summary>The watchers subscribed now.</summary>
    public int Watchers
    {
        get
        {
            lock (gate)
            {
                return watchers.Count;
            }
        }
    }

    /// <summary>
    /// A new watcher, from the next published change on. Dispose it when done reading: a watcher
    /// left subscribed (a call that returned without its token being cancelled) would keep every
    /// later change, up to <see cref="Capacity"/> of them.
    /// </summary>
    public EventSubscription Subscribe(CancellationToken cancellationToken)
    {
        var channel = Channel.CreateBounded<EventRecord>(new BoundedChannelOptions(Capacity) { SingleReader = true, SingleWriter = false });
        lock (gate)
        {
            watchers.Add(channel);
        }

        return new EventSubscription(channel, this, cancellationToken);
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

    internal void Remove(Channel<EventRecord> channel)
    {
        lock (gate)
        {
            watchers.Remove(channel);
        }

        channel.Writer.TryComplete();
    }
}

/// <summary>One watcher's changes; disposing it (or cancelling its token) unsubscribes it.</summary>
public sealed class EventSubscription : ChannelReader<EventRecord>, IDisposable
{
    private readonly Channel<EventRecord> channel;
    private readonly EventBroadcast broadcast;
    private readonly CancellationTokenRegistration registration;

    internal EventSubscription(Channel<EventRecord> channel, EventBroadcast broadcast, CancellationToken cancellationToken)
    {
        this.channel = channel;
        this.broadcast = broadcast;
        registration = cancellationToken.Register(() => broadcast.Remove(channel));
    }

    public override Task Completion => channel.Reader.Completion;

    public override bool CanCount => channel.Reader.CanCount;

    public override int Count => channel.Reader.Count;

    public override bool TryRead([MaybeNullWhen(false)] out EventRecord item) => channel.Reader.TryRead(out item);

    public override bool TryPeek([MaybeNullWhen(false)] out EventRecord item) => channel.Reader.TryPeek(out item);

    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => channel.Reader.WaitToReadAsync(cancellationToken);

    public override ValueTask<EventRecord> ReadAsync(CancellationToken cancellationToken = default) => channel.Reader.ReadAsync(cancellationToken);

    public void Dispose()
    {
        registration.Dispose();
        broadcast.Remove(channel);
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
