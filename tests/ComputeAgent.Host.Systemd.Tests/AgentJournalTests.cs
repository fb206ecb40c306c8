using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>The real agent process logging to a real Unix datagram socket in journald's place: its own log calls, as journalctl would index them.</summary>
public sealed class AgentJournalTests : IAsyncLifetime
{
    private TestGuest guest = null!;
    private string scratch = null!;

    public async Task InitializeAsync()
    {
        guest = await TestGuest.LoadOrBuildAsync();
        scratch = RepositoryPaths.CreateScratch("agent-journal"); // only once nothing before it can fail
    }

    [Fact]
    public async Task One_instances_story_carries_INSTANCE_UUID_and_the_agents_own_fields()
    {
        using var journal = new JournalReceiver(Path.Combine(scratch, "journal.socket"));
        await using var images = await ImageService.StartAsync(guest, scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
            ["OnHostShutdown"] = "none",
            ["LogTarget"] = "journal",
            ["JournalSocketPath"] = journal.Path,
        }, Path.Combine(scratch, "agent"));

        var ready = journal.ReceiveUntil(e => e["MESSAGE"].StartsWith("Ready:", StringComparison.Ordinal));
        Assert.Equal("Ready: 0 instances recovered and in step with libvirt", ready["MESSAGE"]);
        Assert.Equal("0", ready["INSTANCE_COUNT"]);
        Assert.Equal("ComputeAgent.Host.AgentRuntime", ready["SOURCE_CONTEXT"]);
        Assert.Equal("6", ready["PRIORITY"]);
        Assert.Equal("compute-agent", ready["SYSLOG_IDENTIFIER"]);
        Assert.True(ready.Has("EVENT_ID"), "the [LoggerMessage] event id is its own field");

        var uuid = Guid.NewGuid();
        var requestId = $"req-{Guid.NewGuid():N}";
        await agent.Client.SpawnAsync(new SpawnRequest
        {
            RequestId = requestId,
            InstanceUuid = uuid.ToString(),
            Name = "journal-1",
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 64, RootGib = 1 },
            ImageId = images.ImageId,
            ProjectId = "p1",
            UserId = "u1",
        });
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(60));
        await agent.Client.PauseAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Paused }, deadline: DateTime.UtcNow.AddSeconds(60));

        // Written while the call ran: the call's request id comes along.
        var accepted = journal.ReceiveUntil(e => e.Has("INSTANCE_UUID") && e["INSTANCE_UUID"] == uuid.ToString() && e["MESSAGE"].Contains("spawn accepted", StringComparison.Ordinal));
        Assert.Equal(requestId, accepted["REQUEST_ID"]);
        Assert.Equal("SCHEDULING", accepted["TASK_STATE"]);

        // What `journalctl INSTANCE_UUID=<uuid>` shows: the spawn and the pause, each step with its states.
        var paused = journal.ReceiveUntil(e => e.Has("INSTANCE_UUID") && e["INSTANCE_UUID"] == uuid.ToString() && e["MESSAGE"].Contains("pause done", StringComparison.Ordinal));
        Assert.Equal($"Instance {uuid}: pause done, vm_state PAUSED, power_state PAUSED", paused["MESSAGE"]);
        Assert.Equal("pause", paused["COMMAND"]);
        Assert.Equal("PAUSED", paused["VM_STATE"]);
        Assert.Equal("PAUSED", paused["POWER_STATE"]);
        Assert.Equal("ComputeAgent.Instances.Engine.InstanceEngine", paused["SOURCE_CONTEXT"]);

        await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.AddSeconds(60));
    }

    public Task DisposeAsync()
    {
        RepositoryPaths.DeleteScratch(scratch);
        return Task.CompletedTask;
    }
}
