using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Grpc.Health.V1;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// The agent (on test:///default) reporting to a real controller over mutual TLS through a TCP
/// proxy: every state change reaches the controller in order, with no gap, while the controller
/// is killed and restarted, the agent is killed and restarted, and the TCP connection is cut.
/// </summary>
public sealed class ControllerLinkTests
{
    [Fact]
    public async Task Every_change_reaches_the_controller_in_order_across_controller_restart_agent_kill_and_a_cut_connection()
    {
        var scratch = RepositoryPaths.CreateScratch("controller-link");
        var site = ControllerSite.Create(scratch);
        var ledger = site.Ledger;
        var controller = await site.StartAsync();
        await using var proxy = new TcpProxy(site.Port);
        var guest = await TestGuest.LoadOrBuildAsync();
        await using var images = await ImageService.StartAsync(guest, scratch);
        var settings = site.AgentSettings(proxy.Port, 0.1, new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
            ["Controller:HostId"] = "host-1",
            ["Controller:ReportIntervalSeconds"] = "1",
        });
        var agent = await AgentProcess.StartAsync(settings, scratch);
        try
        {
            // Hello and the host report come first.
            await ledger.WaitForAsync(l => l.HostReports.Count >= 1, TimeSpan.FromSeconds(30), "a host report");
            var hello = ledger.Hellos[0];
            Assert.Equal("host-1", hello.HostId);
            Assert.StartsWith("0.1.0", hello.AgentVersion, StringComparison.Ordinal);
            Assert.Contains("command:Spawn", hello.Capabilities);
            Assert.Equal(0, hello.ResumeAfterSequence);
            var report = ledger.HostReports[0];
            Assert.Equal(16, report.VcpusTotal); // the test driver's fixed node: 16 CPUs in 2 cells
            Assert.Equal(2, report.NumaCells.Count);
            Assert.Equal(0, report.InstanceCount);

            // The controller is killed while changes flow, and comes back on the same port.
            var first = await SpawnAsync(agent, images, ledger);
            Assert.Equal(1, ledger.HostReports[^1].VcpusUsed);
            var health = new Health.HealthClient(agent.Channel);
            await using (var churn = Churn.Start(agent, first))
            {
                await ledger.WaitForAsync(l => l.Highest >= 20, TimeSpan.FromSeconds(30), "20 changes");
                await controller.DisposeAsync();
                await WaitHealthAsync(health, "controller", HealthCheckResponse.Types.ServingStatus.NotServing);
                Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
                await Task.Delay(300); // changes pile up in the event log meanwhile
                controller = await site.StartAsync();
                await WaitHealthAsync(health, "controller", HealthCheckResponse.Types.ServingStatus.Serving);
                var before = ledger.Highest;
                await ledger.WaitForAsync(l => l.Highest >= before + 20, TimeSpan.FromSeconds(30), "changes after the controller's restart");
            }

            var settled = await LastSequenceAsync(agent);
            await ledger.WaitForAsync(l => l.Highest >= settled, TimeSpan.FromSeconds(30), "every change before the agent's kill");

            // The agent is killed while the controller holds its acks: what was not acknowledged
            // must come again from the restarted agent, which resumes from its persisted ack.
            ledger.HoldAcks = true;
            await using (var churn = Churn.Start(agent, first))
            {
                var held = ledger.Highest;
                await ledger.WaitForAsync(l => l.Highest >= held + 10, TimeSpan.FromSeconds(30), "changes with acks held");
            }

            var lastBeforeKill = await LastSequenceAsync(agent);
            await agent.KillAsync();
            await agent.DisposeAsync();
            ledger.HoldAcks = false;
            var hellosBefore = ledger.Hellos.Count;
            agent = await AgentProcess.StartAsync(settings, scratch);
            await ledger.WaitForAsync(l => l.Hellos.Count > hellosBefore, TimeSpan.FromSeconds(30), "the restarted agent's hello");
            var resumed = ledger.Hellos[^1];
            Assert.True(resumed.ResumeAfterSequence > 0 && resumed.ResumeAfterSequence < lastBeforeKill, $"resumed after {resumed.ResumeAfterSequence}, last before the kill {lastBeforeKill}");
            await ledger.WaitForAsync(l => l.Duplicates > 0, TimeSpan.FromSeconds(30), "the unacknowledged changes resent");

            // test:///default forgets its domains with the agent process: the restarted agent
            // reports the instance in ERROR; a new one carries on. Then the TCP connection is cut.
            var second = await SpawnAsync(agent, images, ledger);
            await using (var churn = Churn.Start(agent, second))
            {
                var streams = ledger.Streams;
                var before = ledger.Highest;
                await ledger.WaitForAsync(l => l.Highest >= before + 20, TimeSpan.FromSeconds(30), "changes before the cut");
                proxy.CutAll();
                await ledger.WaitForAsync(l => l.Streams > streams, TimeSpan.FromSeconds(30), "a new stream after the cut");
                var after = ledger.Highest;
                await ledger.WaitForAsync(l => l.Highest >= after + 20, TimeSpan.FromSeconds(30), "changes after the cut");
            }

            var last = await LastSequenceAsync(agent);
            await ledger.WaitForAsync(l => l.Highest >= last, TimeSpan.FromSeconds(30), "every change");

            // In order, no gap, nothing missing: first receipts are exactly 1..last.
            var received = ledger.FirstSeen;
            Assert.Equal(Enumerable.Range(1, (int)last).Select(i => (long)i), received.Take((int)last));
            Assert.Equal(0, ledger.OutOfOrderWithinStream);
            Assert.True(ledger.Streams >= 4, $"{ledger.Streams} streams");
            Assert.Contains("Controller link down", agent.Output, StringComparison.Ordinal);
        }
        finally
        {
            await agent.DisposeAsync();
            await controller.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact]
    public async Task A_controller_whose_certificate_another_ca_signed_is_never_reported_to_and_the_log_says_why()
    {
        var scratch = RepositoryPaths.CreateScratch("controller-untrusted");
        var site = ControllerSite.Create(scratch);
        var impostor = TestCertificates.Create(scratch, "impostor CA").IssueServer("controller");
        var port = TestController.FreePort();
        await using var controller = await TestController.StartAsync(site.Pki, impostor, site.Ledger, port);
        var agent = await AgentProcess.StartAsync(site.AgentSettings(port, 0.1, new Dictionary<string, string> { ["LibvirtUri"] = "test:///default" }), scratch);
        try
        {
            for (var i = 0; i < 300 && !agent.Output.Contains("is not trusted", StringComparison.Ordinal); i++)
            {
                await Task.Delay(100);
            }

            Assert.Contains($"The controller at https://127.0.0.1:{port} is not trusted: its certificate 'CN=controller' is refused: it is not signed by the configured CA", agent.Output, StringComparison.Ordinal);
            Assert.Equal(0, site.Ledger.Streams);
            Assert.Empty(site.Ledger.Hellos);
            var health = await new Health.HealthClient(agent.Channel).CheckAsync(new HealthCheckRequest { Service = "controller" });
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, health.Status);
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact]
    public async Task An_ack_file_ahead_of_the_event_log_sends_the_whole_log_again()
    {
        // As after agent.db was replaced: the ack file speaks of a log that is gone.
        var scratch = RepositoryPaths.CreateScratch("controller-ack-ahead");
        Directory.CreateDirectory(Path.Combine(scratch, "state"));
        await File.WriteAllTextAsync(Path.Combine(scratch, "state", "controller-ack"), "999999\n");
        var site = ControllerSite.Create(scratch);
        await using var controller = await site.StartAsync();
        var agent = await AgentProcess.StartAsync(site.AgentSettings(site.Port, 0.1, new Dictionary<string, string> { ["LibvirtUri"] = "test:///default" }), scratch);
        try
        {
            await site.Ledger.WaitForAsync(l => l.Hellos.Count > 0, TimeSpan.FromSeconds(30), "a hello");
            Assert.Equal(0, site.Ledger.Hellos[0].ResumeAfterSequence);
            Assert.Contains("says the controller acknowledged up to 999999, but the event log ends at 0", agent.Output, StringComparison.Ordinal);
        }
        finally
        {
            await agent.DisposeAsync();
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>The agent's newest event-log sequence number (WatchInstances' snapshot carries it).</summary>
    private static async Task<long> LastSequenceAsync(AgentProcess agent)
    {
        using var watch = agent.Client.WatchInstances(new WatchInstancesRequest { Snapshot = true }, deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None), "WatchInstances' snapshot was empty");
        return watch.ResponseStream.Current.Sequence;
    }

    private static async Task<string> SpawnAsync(AgentProcess agent, ImageService images, ControllerLedger ledger)
    {
        var uuid = Guid.NewGuid().ToString();
        await agent.Client.SpawnAsync(new SpawnRequest
        {
            InstanceUuid = uuid,
            Name = "link-test",
            ProjectId = "project-1",
            UserId = "user-1",
            ImageId = images.ImageId,
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 128, RootGib = 1 },
        });
        var active = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.Equal(VmState.Active, active.VmState);
        var reports = ledger.HostReports.Count;
        await ledger.WaitForAsync(l => l.HostReports.Count > reports + 1, TimeSpan.FromSeconds(30), "a host report after the spawn");
        return uuid;
    }

    private static async Task WaitHealthAsync(Health.HealthClient health, string service, HealthCheckResponse.Types.ServingStatus status)
    {
        for (var i = 0; i < 300; i++)
        {
            if ((await health.CheckAsync(new HealthCheckRequest { Service = service })).Status == status)
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"health service '{service}' never became {status}");
    }

    /// <summary>Pause / unpause in a loop until disposed: two state changes a round.</summary>
    private sealed class Churn : IAsyncDisposable
    {
        private readonly CancellationTokenSource stop = new();
        private readonly Task loop;

        private Churn(AgentProcess agent, string uuid) => loop = Task.Run(() => RunAsync(agent, uuid));

        public static Churn Start(AgentProcess agent, string uuid) => new(agent, uuid);

        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            await loop;
            stop.Dispose();
        }

        private async Task RunAsync(AgentProcess agent, string uuid)
        {
            var request = new InstanceRequest { InstanceUuid = uuid };
            while (!stop.IsCancellationRequested)
            {
                await agent.Client.PauseAsync(request);
                await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Paused }, deadline: DateTime.UtcNow.AddSeconds(30));
                await agent.Client.UnpauseAsync(request);
                await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(30));
            }
        }
    }
}
