using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>The real agent process with a real Unix datagram socket as its NOTIFY_SOCKET and WATCHDOG_USEC set, as a unit with WatchdogSec= runs it.</summary>
public sealed class WatchdogTests : IDisposable
{
    private readonly string scratch = RepositoryPaths.CreateScratch("watchdog");

    [Fact]
    public async Task The_agent_says_READY_and_then_pings_the_watchdog_again_and_again()
    {
        using var notify = new NotifySocket(Path.Combine(scratch, "notify.sock"));
        await using var agent = await StartAsync(notify, fault: null);

        Assert.True(await notify.WaitForAsync("READY=1", TimeSpan.FromSeconds(60)), $"no READY=1; got [{string.Join(", ", notify.Messages)}]");
        Assert.True(await WaitForPingsAsync(notify, 3, TimeSpan.FromSeconds(60)), $"fewer than 3 WATCHDOG=1; got [{string.Join(", ", notify.Messages)}]");
        Assert.Contains("systemd watchdog: pinging every 1 s", agent.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pings_stop_when_the_libvirt_event_loop_is_stuck()
    {
        using var notify = new NotifySocket(Path.Combine(scratch, "notify.sock"));
        await using var agent = await StartAsync(notify, fault: "stall-libvirt-event-loop");

        Assert.True(await notify.WaitForAsync("READY=1", TimeSpan.FromSeconds(60)), $"no READY=1; got [{string.Join(", ", notify.Messages)}]");
        await WaitForOutputAsync(agent, "systemd watchdog: not pinging, the agent is not alive", TimeSpan.FromSeconds(60));

        // Five more ping intervals: not one more ping (the agent still serves, but systemd would restart it).
        var pingsThen = Pings(notify);
        for (var i = 0; i < 5; i++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(pingsThen, Pings(notify));
        Assert.Contains("event loop running True", agent.Output, StringComparison.Ordinal);
        Assert.Equal(1, agent.Output.Split('\n').Count(l => l.Contains("not pinging", StringComparison.Ordinal)));
    }

    public void Dispose() => RepositoryPaths.DeleteScratch(scratch);

    private async Task<AgentProcess> StartAsync(NotifySocket notify, string? fault)
    {
        var environment = new Dictionary<string, string>
        {
            ["NOTIFY_SOCKET"] = notify.Path,
            // WatchdogSec=2: a ping every second, the shortest the event loop's heartbeat allows.
            ["WATCHDOG_USEC"] = "2000000",
        };
        if (fault is not null)
        {
            environment["COMPUTE_AGENT_FAULT"] = fault;
        }

        return await AgentProcess.StartAsync(
            new Dictionary<string, string> { ["LibvirtUri"] = "test:///default", ["OnHostShutdown"] = "none" },
            Path.Combine(scratch, "agent"),
            environment,
            systemdParent: true);
    }

    private static int Pings(NotifySocket notify) => notify.Messages.Count(m => m.Split('\n').Contains("WATCHDOG=1"));

    private static async Task<bool> WaitForPingsAsync(NotifySocket notify, int count, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (!cts.IsCancellationRequested)
        {
            if (Pings(notify) >= count)
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
    }

    internal static async Task WaitForOutputAsync(AgentProcess agent, string text, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (!agent.Output.Contains(text, StringComparison.Ordinal))
        {
            if (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"the agent never logged '{text}'; its output: {agent.Output}");
            }

            await Task.Delay(100);
        }
    }
}
