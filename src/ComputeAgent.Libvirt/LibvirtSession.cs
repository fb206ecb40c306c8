using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Libvirt;

/// <summary>Settings of a <see cref="LibvirtSession"/>.</summary>
public sealed record LibvirtSessionOptions
{
    public string Uri { get; init; } = "qemu:///system";

    /// <summary>Seconds between keepalive probes; with <see cref="KeepAliveCount"/> it bounds how long a dead libvirtd goes unnoticed.</summary>
    public int KeepAliveIntervalSeconds { get; init; } = 5;

    public uint KeepAliveCount { get; init; } = 3;

    public TimeSpan ReconnectMinDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// A connection that stays up: when libvirtd goes away (close callback, or a call that fails
/// because the connection died), it reopens with exponential back-off, re-registers the event
/// callbacks, and writes <see cref="DomainEventKind.ConnectionLost"/> then
/// <see cref="DomainEventKind.ConnectionRestored"/> to <see cref="Events"/> so consumers resync.
/// </summary>
public sealed partial class LibvirtSession : IAsyncDisposable
{
    private readonly LibvirtSessionOptions options;
    private readonly ILogger logger;
    private readonly Channel<DomainEvent> events = Channel.CreateUnbounded<DomainEvent>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
    private readonly Channel<int> reconnectRequests = Channel.CreateBounded<int>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource stopping = new();
    private readonly Lock gate = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<LibvirtConnection> pendingClose = new();
    private LibvirtConnection? current;
    private TaskCompletionSource<LibvirtConnection> connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? reconnectLoop;
    private int generation;

    public LibvirtSession(LibvirtSessionOptions options, ILogger<LibvirtSession> logger)
    {
        this.options = options ?? throw new ArgumentNullException(nameof(options));
        this.logger = logger ?? throw new ArgumentNullException(nameof(logger));
    }

    /// <summary>Every domain event of every connection this session has had, plus connection loss/restore markers.</summary>
    public ChannelReader<DomainEvent> Events => events.Reader;

    /// <summary>How many times a connection has been opened (1 after the first connect).</summary>
    public int Generation => Volatile.Read(ref generation);

    public bool IsConnected
    {
        get
        {
            lock (gate)
            {
                return current is not null;
            }
        }
    }

    /// <summary>Opens the first connection, retrying with back-off until it succeeds or <paramref name="cancellationToken"/> fires.</summary>
    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        if (reconnectLoop is not null)
        {
            throw new InvalidOperationException("The session is already connected or connecting.");
        }

        await OpenWithBackoffAsync(isReconnect: false, cancellationToken).ConfigureAwait(false);
        reconnectLoop = Task.Run(ReconnectLoopAsync, CancellationToken.None);
    }

    /// <summary>The live connection, waiting (bounded by the token) while a reconnect is under way.</summary>
    public Task<LibvirtConnection> GetConnectionAsync(CancellationToken cancellationToken)
    {
        Task<LibvirtConnection> pending;
        lock (gate)
        {
            if (current is not null)
            {
                return Task.FromResult(current);
            }

            pending = connected.Task;
        }

        return pending.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Tells the session that a call failed because the connection is gone (keepalive has not
    /// noticed yet); it closes that connection and reconnects.
    /// </summary>
    public void ReportConnectionLost(LibvirtConnection connection)
    {
        lock (gate)
        {
            if (!ReferenceEquals(connection, current))
            {
                return;
            }
        }

        MarkLost(connection, "a call found the connection dead");
    }

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        reconnectRequests.Writer.TryComplete();
        if (reconnectLoop is not null)
        {
            await reconnectLoop.ConfigureAwait(false);
        }

        LibvirtConnection? last;
        lock (gate)
        {
            last = current;
            current = null;
        }

        last?.Dispose();
        events.Writer.TryComplete();
        stopping.Dispose();
    }

    private void MarkLost(LibvirtConnection connection, string why)
    {
        lock (gate)
        {
            if (!ReferenceEquals(connection, current))
            {
                return;
            }

            current = null;
            connected = new TaskCompletionSource<LibvirtConnection>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        LogLost(logger, options.Uri, why);
        events.Writer.TryWrite(DomainEvent.ForConnection(DomainEventKind.ConnectionLost));

        // The dead connection is closed on the reconnect loop, never on the event-loop thread
        // that delivered the close callback (virConnectClose there would deadlock).
        reconnectRequests.Writer.TryWrite(0);
        pendingClose.Enqueue(connection);
    }

    private async Task ReconnectLoopAsync()
    {
        try
        {
            await foreach (var unused in reconnectRequests.Reader.ReadAllAsync(stopping.Token).ConfigureAwait(false))
            {
                while (pendingClose.TryDequeue(out var dead))
                {
                    dead.Dispose();
                }

                await OpenWithBackoffAsync(isReconnect: true, stopping.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        finally
        {
            while (pendingClose.TryDequeue(out var dead))
            {
                dead.Dispose();
            }
        }
    }

    private async Task OpenWithBackoffAsync(bool isReconnect, CancellationToken cancellationToken)
    {
        var backoff = new ReconnectBackoff(options.ReconnectMinDelay, options.ReconnectMaxDelay);
        for (var attempt = 1; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            LibvirtConnection? connection = null;
            try
            {
                connection = LibvirtConnection.Open(options.Uri);
                connection.SetKeepAlive(options.KeepAliveIntervalSeconds, options.KeepAliveCount);
                var opened = connection;
                connection.OnClosed(reason => MarkLost(opened, $"libvirt closed it: {reason}"));
                connection.SubscribeDomainEvents(events.Writer);
            }
            catch (LibvirtException ex)
            {
                connection?.Dispose();
                LogConnectFailed(logger, options.Uri, attempt, ex.LibvirtMessage, (int)backoff.Current.TotalMilliseconds);
                await Task.Delay(backoff.Next(), cancellationToken).ConfigureAwait(false);
                continue;
            }

            TaskCompletionSource<LibvirtConnection> waiting;
            lock (gate)
            {
                current = connection;
                waiting = connected;
            }

            var number = Interlocked.Increment(ref generation);
            waiting.TrySetResult(connection);
            if (isReconnect)
            {
                LogReconnected(logger, options.Uri, attempt, number);
                events.Writer.TryWrite(DomainEvent.ForConnection(DomainEventKind.ConnectionRestored));
            }
            else
            {
                LogConnected(logger, options.Uri);
            }

            return;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Lost the libvirt connection to {LibvirtUri} ({Reason}); reconnecting")]
    private static partial void LogLost(ILogger logger, string libvirtUri, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot connect to libvirt at {LibvirtUri} (attempt {Attempt}): {Error}; retrying in {DelayMs} ms")]
    private static partial void LogConnectFailed(ILogger logger, string libvirtUri, int attempt, string error, int delayMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Reconnected to libvirt at {LibvirtUri} after {Attempt} attempt(s) (connection {Generation})")]
    private static partial void LogReconnected(ILogger logger, string libvirtUri, int attempt, int generation);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connected to libvirt at {LibvirtUri}")]
    private static partial void LogConnected(ILogger logger, string libvirtUri);
}
