using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.StateModel;
using Microsoft.Extensions.Options;
using Microsoft.Win32.SafeHandles;
using Tmds.DBus.Protocol;

namespace ComputeAgent.Host.HostShutdown;

/// <summary>
/// What libvirt-guests does, through the engine: holds a logind "delay" inhibitor lock; when logind
/// announces the host's shutdown (PrepareForShutdown true) stops (ACPI, then destroy after
/// Agent:GracefulStopTimeoutSeconds) or suspends (managed save) every running guest, records them,
/// waits for their states to settle (bounded by Agent:HostShutdownTimeoutSeconds), then releases
/// the lock. At the first start after a host boot it starts or resumes the recorded guests.
/// </summary>
public sealed partial class HostShutdownGuard : BackgroundService
{
    private const string InhibitWhy = "Stopping or saving the guests of this host (compute-agent Agent:OnHostShutdown)";

    private readonly AgentRuntime runtime;
    private readonly GuestCommands commands;
    private readonly AgentOptions options;
    private readonly ILogger logger;
    private readonly Lock gate = new();
    private SafeFileHandle? inhibitor;
    private LogindConnection? logind;
    private Task handling = Task.CompletedTask;

    public HostShutdownGuard(AgentRuntime runtime, GuestCommands commands, IOptions<AgentOptions> options, ILogger<HostShutdownGuard> logger)
    {
        this.runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        this.commands = commands ?? throw new ArgumentNullException(nameof(commands));
        this.options = (options ?? throw new ArgumentNullException(nameof(options))).Value;
        this.logger = logger ?? throw new ArgumentNullException(nameof(logger));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        InstanceEngine engine;
        try
        {
            engine = await runtime.Ready.WaitAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        await BringBackAfterBootAsync(engine, stoppingToken).ConfigureAwait(false);
        if (options.OnHostShutdown == "none")
        {
            LogDisabled(logger);
            return;
        }

        var address = LogindConnection.SystemBusAddress(options.SystemBusAddress);
        try
        {
            logind = await LogindConnection.ConnectAsync(address, stoppingToken).ConfigureAwait(false);
            // Watch first, then take the lock: no shutdown can slip between the two.
            await logind.WatchPrepareForShutdownAsync(starting => OnPrepareForShutdown(engine, starting, stoppingToken), error => LogSignalLost(logger, error.Message)).ConfigureAwait(false);
            await TakeLockAsync().ConfigureAwait(false);
            LogHolding(logger, options.OnHostShutdown, address);
        }
        catch (Exception e) when (e is DBusExceptionBase or IOException or System.Net.Sockets.SocketException)
        {
            // Not fatal: guests are then left to libvirt-guests (or to nothing) at shutdown.
            LogNoLogind(logger, address, e.Message);
            logind?.Dispose();
            logind = null;
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        // The agent stops with the host's shutdown: finish the guests before the lock goes.
        await handling.WaitAsync(cancellationToken).ConfigureAwait(false);
        ReleaseLock();
        logind?.Dispose();
    }

    public override void Dispose()
    {
        ReleaseLock();
        logind?.Dispose();
        base.Dispose();
    }

    private void OnPrepareForShutdown(InstanceEngine engine, bool starting, CancellationToken stoppingToken)
    {
        lock (gate)
        {
            handling = handling.ContinueWith(_ => starting ? ShutDownGuestsAsync(engine, stoppingToken) : ShutdownCancelledAsync(engine, stoppingToken), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).Unwrap();
        }
    }

    private async Task ShutDownGuestsAsync(InstanceEngine engine, CancellationToken cancellationToken)
    {
        try
        {
            var command = options.OnHostShutdown == "suspend" ? InstanceCommand.Suspend : InstanceCommand.Stop;
            var running = engine.List()
                .Where(r => r is { VmState: VmState.Active, TaskState: TaskState.None, PowerState: PowerState.Running })
                .Select(r => new HostShutdownGuest(r.Uuid, command))
                .ToList();
            LogShuttingDown(logger, running.Count, command.ToDisplayName());

            // Recorded before anything is touched: a crash half-way still brings them back after the
            // boot. A second announcement in the same boot adds to the record, never replaces it.
            var bootId = await HostShutdownRecord.ReadBootIdAsync(options.BootIdPath, cancellationToken).ConfigureAwait(false);
            var earlier = await HostShutdownRecord.ReadAsync(options.StateDirectory, cancellationToken).ConfigureAwait(false);
            var recorded = earlier is not null && earlier.BootId == bootId
                ? [.. earlier.Guests, .. running.Where(g => earlier.Guests.All(e => e.Uuid != g.Uuid))]
                : running;
            await new HostShutdownRecord(bootId, DateTimeOffset.UtcNow, recorded).WriteAsync(options.StateDirectory, cancellationToken).ConfigureAwait(false);
            var unsettled = await commands.RunAsync(engine, running, TimeSpan.FromSeconds(options.HostShutdownTimeoutSeconds), cancellationToken).ConfigureAwait(false);
            LogGuestsDone(logger, running.Count - unsettled.Count, running.Count);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogShutdownFailed(logger, e);
        }
        finally
        {
            ReleaseLock();
        }
    }

    private async Task ShutdownCancelledAsync(InstanceEngine engine, CancellationToken cancellationToken)
    {
        LogShutdownCancelled(logger);
        try
        {
            await TakeLockAsync().ConfigureAwait(false);
            await BringBackAsync(engine, await HostShutdownRecord.ReadAsync(options.StateDirectory, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogShutdownFailed(logger, e);
        }
    }

    private async Task BringBackAfterBootAsync(InstanceEngine engine, CancellationToken cancellationToken)
    {
        try
        {
            if (await HostShutdownRecord.ReadAsync(options.StateDirectory, cancellationToken).ConfigureAwait(false) is not { } record)
            {
                return;
            }

            var bootId = await HostShutdownRecord.ReadBootIdAsync(options.BootIdPath, cancellationToken).ConfigureAwait(false);
            if (record.BootId == bootId)
            {
                // The agent restarted, the host did not: its shutdown may still be under way.
                LogSameBoot(logger, record.Guests.Count);
                return;
            }

            await BringBackAsync(engine, record, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidDataException)
        {
            LogRecordUnreadable(logger, HostShutdownRecord.PathIn(options.StateDirectory), e.Message);
        }
    }

    private async Task BringBackAsync(InstanceEngine engine, HostShutdownRecord? record, CancellationToken cancellationToken)
    {
        if (record is null)
        {
            return;
        }

        if (options.ResumeGuestsOnHostBoot)
        {
            var back = record.Guests.Select(g => g with { Command = g.Command == InstanceCommand.Suspend ? InstanceCommand.Resume : InstanceCommand.Start }).ToList();
            LogBringingBack(logger, back.Count);
            await commands.RunAsync(engine, back, TimeSpan.FromSeconds(options.HostShutdownTimeoutSeconds), cancellationToken).ConfigureAwait(false);
        }
        else
        {
            LogLeftDown(logger, record.Guests.Count);
        }

        HostShutdownRecord.Delete(options.StateDirectory);
    }

    private async Task TakeLockAsync()
    {
        var handle = await logind!.InhibitAsync("shutdown", "compute-agent", InhibitWhy, "delay").ConfigureAwait(false);
        lock (gate)
        {
            inhibitor?.Dispose();
            inhibitor = handle;
        }
    }

    private void ReleaseLock()
    {
        lock (gate)
        {
            if (inhibitor is not null)
            {
                inhibitor.Dispose();
                inhibitor = null;
                LogReleased(logger);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Host shutdown: Agent:OnHostShutdown is none, guests are left as they are")]
    private static partial void LogDisabled(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Host shutdown: holding a logind delay lock; running guests get {OnHostShutdown} when the host shuts down (bus {BusAddress})")]
    private static partial void LogHolding(ILogger logger, string onHostShutdown, string busAddress);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Host shutdown: no logind on the system bus {BusAddress} ({Reason}); guests will not be stopped or saved by the agent when the host shuts down")]
    private static partial void LogNoLogind(ILogger logger, string busAddress, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Host shutdown: the system bus went away ({Reason}); the next host shutdown will not wait for the guests")]
    private static partial void LogSignalLost(ILogger logger, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Host shutdown: {GuestCount} running guests get {Command}")]
    private static partial void LogShuttingDown(ILogger logger, int guestCount, string command);

    [LoggerMessage(Level = LogLevel.Information, Message = "Host shutdown: {SettledCount} of {GuestCount} guests settled")]
    private static partial void LogGuestsDone(ILogger logger, int settledCount, int guestCount);

    [LoggerMessage(Level = LogLevel.Error, Message = "Host shutdown: handling the guests failed; releasing the lock")]
    private static partial void LogShutdownFailed(ILogger logger, Exception error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Host shutdown: released the inhibitor lock")]
    private static partial void LogReleased(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Host shutdown cancelled: taking the lock again and bringing the guests back")]
    private static partial void LogShutdownCancelled(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Host shutdown record of {GuestCount} guests is from this boot: the agent restarted, the host did not; leaving it")]
    private static partial void LogSameBoot(ILogger logger, int guestCount);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Host shutdown record {Path} unreadable ({Reason}); no guest is brought back")]
    private static partial void LogRecordUnreadable(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Host boot: bringing back {GuestCount} guests the host's shutdown stopped or saved")]
    private static partial void LogBringingBack(ILogger logger, int guestCount);

    [LoggerMessage(Level = LogLevel.Information, Message = "Host boot: {GuestCount} guests the host's shutdown stopped or saved stay down (Agent:ResumeGuestsOnHostBoot is false)")]
    private static partial void LogLeftDown(ILogger logger, int guestCount);
}
