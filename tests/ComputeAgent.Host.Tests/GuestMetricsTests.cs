using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// A running guest's counters on /metrics against libvirt's own numbers, read directly through
/// ComputeAgent.Libvirt just before and just after the scrape: every counter lies between the two.
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class GuestMetricsTests(QemuHost host)
{
    [SkippableFact]
    public async Task A_running_guests_counters_are_libvirts_own_labelled_with_its_uuid_and_project()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("guest-metrics");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        var port = TestController.FreePort();
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["MetricsListen"] = $"127.0.0.1:{port}",
        }, scratch);
        var uuid = Guid.NewGuid();
        var tap = "tapm" + uuid.ToString("N")[..8];
        try
        {
            await agent.Client.SpawnAsync(new SpawnRequest
            {
                InstanceUuid = uuid.ToString(),
                Name = "guest-metrics",
                ProjectId = "project-metrics",
                UserId = "user-1",
                ImageId = images.ImageId,
                Flavor = InstanceWalk.Tiny,
                Ports = { new Port { Id = Guid.NewGuid().ToString(), Mac = "fa:16:3e:00:00:15", VifType = "ethernet", DeviceName = tap } },
            });
            var active = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow.Add(InstanceWalk.Bound));
            Assert.Equal((VmState.Active, PowerState.Running), (active.VmState, active.PowerState));
            var deadline = DateTime.UtcNow.Add(InstanceWalk.Bound);
            while (!(await agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { InstanceUuid = uuid.ToString() })).Output.Contains(host.Guest.ReadyLine, StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline, "the guest did not boot");
                await Task.Delay(500);
            }

            using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
            using var domain = libvirt.LookupByUuid(uuid);
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var infoBefore = domain.GetInfo();
            var blockBefore = domain.GetBlockStats("vda");
            var nicBefore = domain.GetInterfaceStats(tap);
            var metrics = await MetricsTests.ScrapeAsync(http, keep: Path.Combine(scratch, "metrics.txt"));
            var infoAfter = domain.GetInfo();
            var blockAfter = domain.GetBlockStats("vda");
            var nicAfter = domain.GetInterfaceStats(tap);

            (string, string)[] guest = [("instance_uuid", uuid.ToString()), ("project", "project-metrics")];
            Assert.Equal("counter", metrics.FamilyTypes["compute_agent_guest_cpu_seconds_total"]);
            // virDomainGetInfo counts the QEMU process's CPU time in clock ticks here (10 ms: CI saw
            // 6.07 before, 6.08 after and the bulk stats' 6.0813), so its bracket is one tick wider each side.
            Between(infoBefore.CpuTimeNs / 1e9 - ClockTick, metrics.Value("compute_agent_guest_cpu_seconds_total", guest), infoAfter.CpuTimeNs / 1e9 + ClockTick);
            Assert.Equal(infoAfter.MemoryKiB * 1024.0, metrics.Value("compute_agent_guest_balloon_current_bytes", guest));
            Assert.True(metrics.Value("compute_agent_guest_vcpu_seconds_total", [.. guest, ("vcpu", "0")]) > 0);

            (string, string)[] disk = [.. guest, ("disk", "vda")];
            Assert.True(blockBefore.ReadBytes > 0, "booting reads the disk");
            Between(blockBefore.ReadBytes, metrics.Value("compute_agent_guest_block_read_bytes_total", disk), blockAfter.ReadBytes);
            Between(blockBefore.ReadRequests, metrics.Value("compute_agent_guest_block_read_requests_total", disk), blockAfter.ReadRequests);
            Between(blockBefore.WriteBytes, metrics.Value("compute_agent_guest_block_write_bytes_total", disk), blockAfter.WriteBytes);
            Between(blockBefore.WriteRequests, metrics.Value("compute_agent_guest_block_write_requests_total", disk), blockAfter.WriteRequests);

            (string, string)[] nic = [.. guest, ("interface", tap)];
            Between(nicBefore.RxBytes, metrics.Value("compute_agent_guest_network_receive_bytes_total", nic), nicAfter.RxBytes);
            Between(nicBefore.TxBytes, metrics.Value("compute_agent_guest_network_transmit_bytes_total", nic), nicAfter.TxBytes);
            Between(nicBefore.RxPackets, metrics.Value("compute_agent_guest_network_receive_packets_total", nic), nicAfter.RxPackets);
            Between(nicBefore.TxPackets, metrics.Value("compute_agent_guest_network_transmit_packets_total", nic), nicAfter.TxPackets);
            Between(nicBefore.RxDrops, metrics.Value("compute_agent_guest_network_receive_drops_total", nic), nicAfter.RxDrops);
            Between(nicBefore.TxDrops, metrics.Value("compute_agent_guest_network_transmit_drops_total", nic), nicAfter.TxDrops);

            // Deleted: its series go with it at the next scrape.
            await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow.Add(InstanceWalk.Bound));
            var after = await MetricsTests.ScrapeAsync(http);
            Assert.DoesNotContain(after.Samples, s => s.Labels.TryGetValue("instance_uuid", out var u) && u == uuid.ToString());
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
        }
    }

    /// <summary>One USER_HZ tick (Linux's fixed 100 Hz for /proc's CPU times).</summary>
    private const double ClockTick = 0.01;

    private static void Between(double low, double value, double high) =>
        Assert.True(low <= value + 1e-6 && value <= high + 1e-6, $"{value} is not between libvirt's {low} (before) and {high} (after)");
}
