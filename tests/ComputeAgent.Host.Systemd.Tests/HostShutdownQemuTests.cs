using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>
/// One real QEMU guest through a host shutdown and the boot after it: the ACPI shutdown has ended
/// in libvirt before the inhibitor lock goes, and the next agent, in a new boot, starts it again.
/// </summary>
[Collection(QemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class HostShutdownQemuTests(QemuHost host) : IDisposable
{
    private readonly string scratch = RepositoryPaths.CreateScratch("host-shutdown-qemu");

    [SkippableFact]
    public async Task A_running_guest_is_shut_off_before_the_lock_goes_and_started_again_after_the_host_boots()
    {
        host.SkipIfUnavailable();
        Skip.IfNot(DBusDaemon.Installed, "dbus-daemon is not installed (Debian package dbus); tests/host/ensure-host.sh installs it");
        await using var bus = await DBusDaemon.StartAsync(scratch);
        using var logind = await LogindStandIn.StartAsync(bus.Address);
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        var bootId = Path.Combine(scratch, "boot_id");
        await File.WriteAllTextAsync(bootId, "boot-1\n");
        var settings = new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["SystemBusAddress"] = bus.Address,
            ["BootIdPath"] = bootId,
            ["OnHostShutdown"] = "shutdown",
            ["GracefulStopTimeoutSeconds"] = "60",
        };
        var agentScratch = Path.Combine(scratch, "agent");
        string? uuid = null;
        try
        {
            await using (var agent = await AgentProcess.StartAsync(settings, agentScratch))
            {
                var held = await logind.NextLockAsync(0, TimeSpan.FromSeconds(60));
                uuid = await HostShutdownTests.SpawnAsync(agent, images, "qemu-1");
                await WaitForConsoleAsync(agent, uuid, host.Guest.ReadyLine);

                // A host shutdown stops every guest the agent has: other agents' guests on this
                // libvirtd (a shared build machine) must not be among them (adopted only from its own folder).
                var others = (await agent.Client.ListInstancesAsync(new ListInstancesRequest())).Instances
                    .Where(i => i.Uuid != uuid).Select(i => i.Uuid).ToList();
                Assert.Empty(others);

                // At the moment the lock's descriptor closes: the agent's view and libvirt's.
                var atRelease = held.Released.ContinueWith(
                    async _ =>
                    {
                        var instance = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid });
                        using var connection = LibvirtConnection.Open(QemuHost.Uri);
                        using var domain = connection.LookupByUuid(Guid.Parse(uuid));
                        return (instance.VmState, instance.TaskState, instance.PowerState, domain.GetState().State);
                    },
                    TaskScheduler.Default).Unwrap();
                logind.EmitPrepareForShutdown(true);
                Assert.Equal((VmState.Stopped, TaskState.None, PowerState.Shutdown, DomainState.Shutoff), await atRelease.WaitAsync(TimeSpan.FromSeconds(180)));
                Assert.True(agent.Output.Contains("Host shutdown: 1 running guests get stop", StringComparison.Ordinal), agent.Output);
            }

            // The host boots: a new boot id, a new agent on the same state.
            await File.WriteAllTextAsync(bootId, "boot-2\n");
            await using (var agent = await AgentProcess.StartAsync(settings, agentScratch))
            {
                var back = await HostShutdownTests.WaitAsync(agent, uuid, VmState.Active);
                Assert.Equal(PowerState.Running, back.PowerState);
                using (var connection = LibvirtConnection.Open(QemuHost.Uri))
                using (var domain = connection.LookupByUuid(Guid.Parse(uuid)))
                {
                    Assert.Equal(DomainState.Running, domain.GetState().State);
                }

                Assert.True(agent.Output.Contains("Host boot: bringing back 1 guests", StringComparison.Ordinal), agent.Output);
                Assert.False(File.Exists(Path.Combine(agentScratch, "state", "host-shutdown.json")), "the record is gone once the guests are back");
                await logind.NextLockAsync(1, TimeSpan.FromSeconds(60));

                await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid });
                await HostShutdownTests.WaitAsync(agent, uuid, VmState.Deleted);
            }
        }
        finally
        {
            if (uuid is not null)
            {
                DomainCleanup.Remove(QemuHost.Uri, Guid.Parse(uuid));
            }
        }
    }

    public void Dispose() => RepositoryPaths.DeleteScratch(scratch);

    private static async Task WaitForConsoleAsync(AgentProcess agent, string uuid, string line)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        while (true)
        {
            var output = (await agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { InstanceUuid = uuid })).Output;
            if (output.Contains(line, StringComparison.Ordinal))
            {
                return;
            }

            if (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"'{line}' never appeared on the console of {uuid}: {output}");
            }

            await Task.Delay(200);
        }
    }
}
