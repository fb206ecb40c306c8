using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Host.HostShutdown;

/// <summary>
/// Runs one command on many guests through the engine (so every state change is committed and
/// streamed as any other) and waits, bounded, until each has settled (task_state none).
/// </summary>
public sealed partial class GuestCommands
{
    private readonly ILogger logger;

    public GuestCommands(ILogger<GuestCommands> logger) => this.logger = logger ?? throw new ArgumentNullException(nameof(logger));

    /// <summary>Submits each command; returns the guests that had not settled when <paramref name="timeout"/> ran out.</summary>
    public async Task<IReadOnlyList<Guid>> RunAsync(InstanceEngine engine, IReadOnlyList<HostShutdownGuest> guests, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(guests);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(timeout);
        using var events = engine.Events.Subscribe(bounded.Token);
        var pending = new HashSet<Guid>();
        foreach (var guest in guests)
        {
            try
            {
                await engine.SubmitAsync(guest.Uuid, guest.Command, cancellationToken).ConfigureAwait(false);
                pending.Add(guest.Uuid);
                LogSubmitted(logger, guest.Uuid, guest.Command.ToDisplayName());
            }
            catch (Exception e) when (e is InstanceCommandRefusedException or InstanceNotFoundException)
            {
                // Someone else changed it meanwhile (deleted, stopped by the controller): nothing to do for it.
                LogRefused(logger, guest.Uuid, guest.Command.ToDisplayName(), e.Message);
            }
        }

        try
        {
            // Subscribed before submitting: every change after a check arrives as an event.
            while (true)
            {
                pending.RemoveWhere(uuid => engine.Find(uuid) is null or { TaskState: TaskState.None });
                if (pending.Count == 0)
                {
                    break;
                }

                await events.ReadAsync(bounded.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            LogTimedOut(logger, timeout.TotalSeconds, string.Join(", ", pending));
        }

        return [.. pending];
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceUuid}: {Command} submitted for the host's shutdown or boot")]
    private static partial void LogSubmitted(ILogger logger, Guid instanceUuid, string command);

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceUuid}: {Command} not needed: {Reason}")]
    private static partial void LogRefused(ILogger logger, Guid instanceUuid, string command, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Not settled after {TimeoutSeconds} s, going on without them: {InstanceUuids}")]
    private static partial void LogTimedOut(ILogger logger, double timeoutSeconds, string instanceUuids);
}
