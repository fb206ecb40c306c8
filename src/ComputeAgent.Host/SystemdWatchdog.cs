using System.Globalization;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Hosting.Systemd;

namespace ComputeAgent.Host;

/// <summary>
/// Pings systemd's watchdog (WATCHDOG=1 on $NOTIFY_SOCKET every half of $WATCHDOG_USEC, as
/// sd_watchdog_enabled describes) only while the agent can still do its work: libvirt's event
/// loop keeps iterating (its heartbeat) and, once recovery is done, the engine's event pump and
/// reconcile loop run. A stuck agent stops pinging, and systemd restarts it (WatchdogSec=).
/// </summary>
public sealed partial class SystemdWatchdog : BackgroundService
{
    private readonly AgentRuntime runtime;
    private readonly ISystemdNotifier notifier;
    private readonly ILogger logger;
    private readonly TimeProvider time;
    private int lastIterations = -1;

    public SystemdWatchdog(AgentRuntime runtime, ISystemdNotifier notifier, ILogger<SystemdWatchdog> logger, TimeProvider time)
    {
        this.runtime = runtime ?? throw new ArgumentNullException(nameof(runtime));
        this.notifier = notifier ?? throw new ArgumentNullException(nameof(notifier));
        this.logger = logger ?? throw new ArgumentNullException(nameof(logger));
        this.time = time ?? throw new ArgumentNullException(nameof(time));
    }

    /// <summary>Half of $WATCHDOG_USEC when systemd asked this process for pings; null otherwise.</summary>
    public static TimeSpan? PingInterval()
    {
        if (!long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), NumberStyles.None, CultureInfo.InvariantCulture, out var usec) || usec <= 0)
        {
            return null;
        }

        // WATCHDOG_PID names the process systemd expects the pings from; a child must not ping.
        if (Environment.GetEnvironmentVariable("WATCHDOG_PID") is { Length: > 0 } pid && pid != Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
        {
            return null;
        }

        return TimeSpan.FromMicroseconds(usec / 2.0);
    }

    /// <summary>Whether the agent is alive now: the libvirt loop iterated since the last check, and the engine runs once ready.</summary>
    public bool IsAlive()
    {
        var iterations = LibvirtEventLoop.Iterations;
        var loopAdvanced = LibvirtEventLoop.IsRunning && iterations != lastIterations;
        lastIterations = iterations;
        var engineAlive = !runtime.IsReady || runtime.Engine is { IsAlive: true };
        return loopAdvanced && engineAlive;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (PingInterval() is not { } interval || !notifier.IsEnabled)
        {
            return;
        }

        // Never slower than the heartbeat: the loop must have had a chance to iterate between checks.
        if (interval < LibvirtEventLoop.HeartbeatInterval * 2)
        {
            LogIntervalTooShort(logger, interval.TotalSeconds, LibvirtEventLoop.HeartbeatInterval.TotalSeconds * 4);
        }

        LogEnabled(logger, interval.TotalSeconds);
        var wasAlive = true;
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            do
            {
                var alive = IsAlive();
                if (alive)
                {
                    notifier.Notify(new ServiceState("WATCHDOG=1"));
                }
                else if (wasAlive)
                {
                    LogNotAlive(logger, LibvirtEventLoop.IsRunning, LibvirtEventLoop.Iterations, runtime.IsReady, runtime.Engine?.IsAlive ?? false);
                }

                wasAlive = alive;
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "systemd watchdog: pinging every {PingIntervalSeconds} s while the libvirt event loop and the engine are alive")]
    private static partial void LogEnabled(ILogger logger, double pingIntervalSeconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "systemd watchdog: a ping interval of {PingIntervalSeconds} s is shorter than the event loop's heartbeat allows; set WatchdogSec= to at least {MinimumWatchdogSeconds} s")]
    private static partial void LogIntervalTooShort(ILogger logger, double pingIntervalSeconds, double minimumWatchdogSeconds);

    [LoggerMessage(Level = LogLevel.Error, Message = "systemd watchdog: not pinging, the agent is not alive (event loop running {EventLoopRunning}, iterations {EventLoopIterations}, ready {Ready}, engine alive {EngineAlive}); systemd will restart the agent")]
    private static partial void LogNotAlive(ILogger logger, bool eventLoopRunning, int eventLoopIterations, bool ready, bool engineAlive);
}
