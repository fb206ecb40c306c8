using Grpc.Core;

namespace ComputeAgent.Host;

/// <summary>
/// Who holds each guest's serial console (AttachConsole): one session per instance. A second
/// attach is refused unless it forces, which ends the holder's session (ABORTED) and waits for it
/// to let the console go; the agent stopping ends every session (UNAVAILABLE).
/// </summary>
public sealed partial class ConsoleSessions : IDisposable
{
    private readonly Lock gate = new();
    private readonly Dictionary<Guid, ConsoleSession> open = [];
    private readonly ILogger<ConsoleSessions> logger;
    private readonly CancellationTokenRegistration stopping;

    public ConsoleSessions(IHostApplicationLifetime lifetime, ILogger<ConsoleSessions> logger)
    {
        ArgumentNullException.ThrowIfNull(lifetime);
        this.logger = logger;
        stopping = lifetime.ApplicationStopping.Register(EndAll);
    }

    /// <summary>Takes the instance's console for a new session, or refuses FAILED_PRECONDITION.</summary>
    public async Task<ConsoleSession> OpenAsync(Guid uuid, bool force, string peer, CancellationToken cancellationToken)
    {
        var session = new ConsoleSession(uuid, peer);
        ConsoleSession? holder;
        lock (gate)
        {
            if (open.TryGetValue(uuid, out holder) && !force)
            {
                throw new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"a console session is open on instance {uuid} (from {holder.Peer}); attach with force (compute-agent-cli console --force) to take it over"));
            }

            open[uuid] = session;
        }

        if (holder is not null)
        {
            LogTakenOver(logger, uuid, holder.Peer, peer);
            holder.End(ConsoleEnd.TakenOver);

            // The new stream is opened once the old one is closed, so libvirt sees one holder at a time.
            try
            {
                await holder.Closed.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // The forcing caller left while waiting: the console must not stay taken in its name.
                Close(session, "the client left while taking the console over");
                throw;
            }
        }

        LogOpened(logger, uuid, peer);
        return session;
    }

    /// <summary>Lets the console go; <paramref name="how"/> says why, for the log.</summary>
    public void Close(ConsoleSession session, string how)
    {
        ArgumentNullException.ThrowIfNull(session);
        lock (gate)
        {
            if (open.TryGetValue(session.InstanceUuid, out var current) && current == session)
            {
                open.Remove(session.InstanceUuid);
            }
        }

        LogClosed(logger, session.InstanceUuid, session.Peer, how);
        session.MarkClosed();
    }

    public void Dispose()
    {
        stopping.Dispose();
        EndAll();
    }

    private void EndAll()
    {
        ConsoleSession[] sessions;
        lock (gate)
        {
            sessions = [.. open.Values];
        }

        foreach (var session in sessions)
        {
            session.End(ConsoleEnd.AgentStopping);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Console session opened on instance {InstanceUuid} by {Peer}")]
    private static partial void LogOpened(ILogger logger, Guid instanceUuid, string peer);

    [LoggerMessage(Level = LogLevel.Information, Message = "Console session on instance {InstanceUuid} of {Peer} closed: {How}")]
    private static partial void LogClosed(ILogger logger, Guid instanceUuid, string peer, string how);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Console of instance {InstanceUuid} taken over: the session of {Peer} ends for {NewPeer}, who forced it")]
    private static partial void LogTakenOver(ILogger logger, Guid instanceUuid, string peer, string newPeer);
}

/// <summary>Why the agent ended a console session (the client and the guest end theirs by closing).</summary>
public enum ConsoleEnd
{
    None,
    TakenOver,
    AgentStopping,
}

/// <summary>One AttachConsole call holding an instance's console.</summary>
public sealed class ConsoleSession(Guid instanceUuid, string peer) : IDisposable
{
    private readonly CancellationTokenSource ended = new();
    private readonly TaskCompletionSource closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int reason;

    public Guid InstanceUuid { get; } = instanceUuid;

    public string Peer { get; } = peer;

    /// <summary>Cancelled when the agent ends the session; <see cref="Reason"/> says why.</summary>
    public CancellationToken Ended => ended.Token;

    public ConsoleEnd Reason => (ConsoleEnd)Volatile.Read(ref reason);

    /// <summary>Completes once the session has let its console go.</summary>
    public Task Closed => closed.Task;

    /// <summary>The status the call ends with when the agent ended it.</summary>
    public Status EndStatus => Reason switch
    {
        ConsoleEnd.TakenOver => new Status(StatusCode.Aborted, $"another console session took the console of instance {InstanceUuid} over (force); attach again with force to take it back"),
        _ => new Status(StatusCode.Unavailable, "the agent is stopping; attach again once it is back"),
    };

    internal void End(ConsoleEnd why)
    {
        if (Interlocked.CompareExchange(ref reason, (int)why, (int)ConsoleEnd.None) != (int)ConsoleEnd.None)
        {
            return;
        }

        try
        {
            ended.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Closed meanwhile: nothing left to end.
        }
    }

    public void Dispose() => ended.Dispose();

    internal void MarkClosed()
    {
        closed.TrySetResult();
        Dispose();
    }
}
