using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>The real agent under a stand-in systemd parent and NOTIFY_SOCKET, started while libvirt does not answer.</summary>
public sealed class StartupWaitTests : IDisposable
{
    private readonly string scratch = RepositoryPaths.CreateScratch("startup-wait");

    [Fact]
    public async Task While_libvirt_does_not_answer_the_start_timeout_is_extended_and_SIGTERM_stops_the_agent_cleanly()
    {
        using var notify = new NotifySocket(Path.Combine(scratch, "notify.sock"));
        // A libvirt socket nobody listens on: every connect attempt fails and the agent keeps waiting.
        var libvirt = $"qemu+unix:///system?socket={Path.Combine(scratch, "no-libvirtd.sock")}";
        await using var agent = AgentProcess.Begin(
            new Dictionary<string, string> { ["LibvirtUri"] = libvirt, ["OnHostShutdown"] = "none" },
            Path.Combine(scratch, "agent"),
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path },
            systemdParent: true);

        await WatchdogTests.WaitForOutputAsync(agent, $"Cannot connect to libvirt at {libvirt}", TimeSpan.FromSeconds(60));
        // 30 s, renewed every 10 s (AgentRuntime.StartExtension), so TimeoutStartSec= does not run out meanwhile.
        Assert.True(await notify.WaitForAsync("EXTEND_TIMEOUT_USEC=30000000", TimeSpan.FromSeconds(30)), $"no EXTEND_TIMEOUT_USEC; got [{string.Join(", ", notify.Messages)}]");
        Assert.True(await notify.WaitForAsync($"STATUS=Waiting for libvirt at {libvirt}", TimeSpan.FromSeconds(5)), $"no STATUS; got [{string.Join(", ", notify.Messages)}]");

        var exitCode = await agent.StopAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, exitCode);
        Assert.Contains("compute-agent: stopped while starting; nothing was started", agent.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", agent.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", agent.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("READY=1", notify.Messages.SelectMany(m => m.Split('\n')));
    }

    public void Dispose() => RepositoryPaths.DeleteScratch(scratch);
}
