using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>
/// The real agent process, a real dbus-daemon as the system bus, and a login1 stand-in on it
/// (logind itself needs systemd as PID 1): the inhibitor lock, PrepareForShutdown, the guests
/// handled before the lock goes, and brought back after a host boot.
/// </summary>
public sealed class HostShutdownTests : IAsyncLifetime
{
    private TestGuest guest = null!;
    private string scratch = null!;

    public async Task InitializeAsync()
    {
        guest = await TestGuest.LoadOrBuildAsync();
        scratch = RepositoryPaths.CreateScratch("host-shutdown"); // only once nothing before it can fail
    }

    [SkippableFact]
    public async Task Suspend_on_shutdown_saves_every_running_guest_before_the_lock_goes_and_a_cancelled_shutdown_brings_them_back()
    {
        Skip.IfNot(DBusDaemon.Installed, "dbus-daemon is not installed (Debian package dbus); tests/host/ensure-host.sh installs it");
        await using var bus = await DBusDaemon.StartAsync(scratch);
        using var logind = await LogindStandIn.StartAsync(bus.Address);
        await using var images = await ImageService.StartAsync(guest, scratch);
        var bootId = Path.Combine(scratch, "boot_id");
        await File.WriteAllTextAsync(bootId, "boot-1\n");
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
            ["SystemBusAddress"] = bus.Address,
            ["BootIdPath"] = bootId,
            ["OnHostShutdown"] = "suspend",
        }, Path.Combine(scratch, "agent"));

        var held = await logind.NextLockAsync(0, TimeSpan.FromSeconds(60));
        Assert.Equal(("shutdown", "compute-agent", "delay"), (held.What, held.Who, held.Mode));
        Assert.Contains("Agent:OnHostShutdown", held.Why, StringComparison.Ordinal);

        var running = new[] { await SpawnAsync(agent, images, "run-1"), await SpawnAsync(agent, images, "run-2") };
        var stopped = await SpawnAsync(agent, images, "stopped-1");
        await agent.Client.StopAsync(new StopRequest { InstanceUuid = stopped });
        await WaitAsync(agent, stopped, VmState.Stopped);

        // What the agent reports at the moment the lock's descriptor closes.
        var atRelease = held.Released.ContinueWith(_ => agent.Client.ListInstancesAsync(new ListInstancesRequest()).ResponseAsync, TaskScheduler.Default).Unwrap();
        logind.EmitPrepareForShutdown(true);
        var states = (await atRelease.WaitAsync(TimeSpan.FromSeconds(120))).Instances.ToDictionary(i => i.Uuid, i => (i.VmState, i.TaskState, i.PowerState));
        Assert.All(running, uuid => Assert.Equal((VmState.Suspended, TaskState.None, PowerState.Suspended), states[uuid]));
        Assert.Equal((VmState.Stopped, TaskState.None, PowerState.Shutdown), states[stopped]);

        // The test driver suspends at once, so the order is also read from the agent's own log.
        var output = agent.Output;
        var settled = output.IndexOf("Host shutdown: 2 of 2 guests settled", StringComparison.Ordinal);
        var released = output.IndexOf("Host shutdown: released the inhibitor lock", StringComparison.Ordinal);
        Assert.True(settled >= 0 && released > settled, output);

        // logind announcing again (the lock is gone, nothing runs) keeps what the record says.
        logind.EmitPrepareForShutdown(true);
        await WatchdogTests.WaitForOutputAsync(agent, "Host shutdown: 0 of 0 guests settled", TimeSpan.FromSeconds(60));
        var record = await File.ReadAllTextAsync(Path.Combine(scratch, "agent", "state", "host-shutdown.json"));
        Assert.Contains("\"boot_id\": \"boot-1\"", record, StringComparison.Ordinal);
        Assert.All(running, uuid => Assert.Contains(uuid, record, StringComparison.Ordinal));
        Assert.DoesNotContain(stopped, record, StringComparison.Ordinal);
        Assert.Contains("\"command\": \"suspend\"", record, StringComparison.Ordinal);

        // The shutdown is cancelled: the agent takes the lock again and resumes what it saved.
        logind.EmitPrepareForShutdown(false);
        var again = await logind.NextLockAsync(1, TimeSpan.FromSeconds(60));
        Assert.Equal("delay", again.Mode);
        foreach (var uuid in running)
        {
            var back = await WaitAsync(agent, uuid, VmState.Active);
            Assert.Equal(PowerState.Running, back.PowerState);
        }

        Assert.Equal(VmState.Stopped, (await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = stopped })).VmState);
        Assert.False(File.Exists(Path.Combine(scratch, "agent", "state", "host-shutdown.json")));
        Assert.False(again.Released.IsCompleted, "the new lock is held");
    }

    [Fact]
    public async Task Without_a_system_bus_the_agent_warns_once_and_serves()
    {
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["SystemBusAddress"] = $"unix:path={Path.Combine(scratch, "no-bus")}",
        }, Path.Combine(scratch, "agent"));

        await WatchdogTests.WaitForOutputAsync(agent, "Host shutdown: no logind on the system bus", TimeSpan.FromSeconds(60));
        Assert.Equal(1, agent.Output.Split('\n').Count(l => l.Contains("no logind on the system bus", StringComparison.Ordinal)));
        Assert.Contains($"no bus socket at {Path.Combine(scratch, "no-bus")}); guests will not be stopped or saved by the agent when the host shuts down", agent.Output, StringComparison.Ordinal);
        Assert.Equal(16, (await agent.Client.GetHostAsync(new GetHostRequest())).Cpus);
    }

    [SkippableFact]
    public async Task With_a_bus_but_no_logind_the_agent_warns_once_and_serves()
    {
        Skip.IfNot(DBusDaemon.Installed, "dbus-daemon is not installed (Debian package dbus); tests/host/ensure-host.sh installs it");
        await using var bus = await DBusDaemon.StartAsync(scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["SystemBusAddress"] = bus.Address,
        }, Path.Combine(scratch, "agent"));

        await WatchdogTests.WaitForOutputAsync(agent, "Host shutdown: no logind on the system bus", TimeSpan.FromSeconds(60));
        Assert.Equal(1, agent.Output.Split('\n').Count(l => l.Contains("no logind on the system bus", StringComparison.Ordinal)));
        Assert.Contains("org.freedesktop.login1", agent.Output, StringComparison.Ordinal);
        Assert.Equal(16, (await agent.Client.GetHostAsync(new GetHostRequest())).Cpus);
    }

    public Task DisposeAsync()
    {
        RepositoryPaths.DeleteScratch(scratch);
        return Task.CompletedTask;
    }

    internal static async Task<string> SpawnAsync(AgentProcess agent, ImageService images, string name)
    {
        var uuid = Guid.NewGuid().ToString();
        await agent.Client.SpawnAsync(new SpawnRequest
        {
            InstanceUuid = uuid,
            Name = name,
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
            ImageId = images.ImageId,
            ProjectId = "p1",
            UserId = "u1",
        });
        await WaitAsync(agent, uuid, VmState.Active);
        return uuid;
    }

    internal static async Task<Instance> WaitAsync(AgentProcess agent, string uuid, VmState vmState)
    {
        var instance = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = vmState }, deadline: DateTime.UtcNow.AddSeconds(120));
        Assert.Equal((vmState, TaskState.None), (instance.VmState, instance.TaskState));
        return instance;
    }
}
