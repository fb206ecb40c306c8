using ComputeAgent.Api.V1;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

[CollectionDefinition(Name)]
public sealed class AgentQemuCollection : ICollectionFixture<QemuHost>
{
    public const string Name = "the agent process on real libvirtd + QEMU";
}

/// <summary>kill -9 of the agent in the middle of a task, then a restart: the instance settles to what libvirt shows.</summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class AgentCrashTests(QemuHost host)
{
    [SkippableFact]
    public async Task An_agent_killed_during_a_suspend_settles_the_instance_to_what_libvirt_shows_on_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-crash");
        var uuid = Guid.NewGuid();
        var settings = new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri };
        await DefineGuestOfOursAsync(scratch, uuid);
        try
        {
            var agent = await AgentProcess.StartAsync(settings, scratch);
            var request = new InstanceRequest { InstanceUuid = uuid.ToString() };
            var adopted = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Active, PowerState.Running), (adopted.VmState, adopted.PowerState));
            await EventWaits.WaitForConsoleLineAsync(Path.Combine(scratch, "instances", uuid.ToString(), "console.log"), host.Guest.ReadyLine, TimeSpan.FromSeconds(120));

            // The managed save takes a couple of seconds under TCG: kill the agent inside it.
            var suspending = await agent.Client.SuspendAsync(request);
            Assert.Equal(TaskState.Suspending, suspending.Instance.TaskState);
            await agent.KillAsync();
            await agent.DisposeAsync();

            // Whatever libvirt finished, the restarted agent reports exactly that, with no task left.
            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var after = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            using var connection = LibvirtConnection.Open(QemuHost.Uri);
            using var domain = connection.LookupByUuid(uuid);
            var libvirtState = domain.GetState();
            var expected = libvirtState.ShutoffReason == DomainShutoffReason.Saved
                ? (VmState.Suspended, PowerState.Suspended)
                : libvirtState.State == DomainState.Running ? (VmState.Active, PowerState.Running) : (VmState.Paused, PowerState.Paused);
            Assert.Equal(expected, (after.VmState, after.PowerState));
            Assert.Equal(TaskState.None, after.TaskState);
            Assert.Equal("interrupted", after.Fault.Code);

            // And it is usable again: delete it through the restarted agent.
            await restarted.Client.DeleteAsync(request);
            var deleted = await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString() }, deadline: DateTime.UtcNow.AddSeconds(60));
            Assert.Equal(VmState.Deleted, deleted.VmState);
            Assert.Null(connection.TryLookupByUuid(uuid));
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task An_agent_killed_during_a_resize_rolls_it_back_on_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-crash-resize");
        var uuid = Guid.NewGuid();
        var settings = new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri, ["GracefulStopTimeoutSeconds"] = "30" };
        await DefineGuestOfOursAsync(scratch, uuid);
        var root = Path.Combine(scratch, "instances", uuid.ToString(), "disk");
        try
        {
            var sizeBefore = await VirtualSizeAsync(root);
            var agent = await AgentProcess.StartAsync(settings, scratch);
            await EventWaits.WaitForConsoleLineAsync(Path.Combine(scratch, "instances", uuid.ToString(), "console.log"), host.Guest.ReadyLine, TimeSpan.FromSeconds(120));
            using (var watch = agent.Client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid.ToString() }))
            {
                await agent.Client.ResizeAsync(new ResizeRequest
                {
                    InstanceUuid = uuid.ToString(),
                    Flavor = new Api.V1.Flavor { Name = "m1.small", Vcpus = 2, RamMib = 512, RootGib = 2 },
                });

                // Kill -9 once the guest is off, its disk set aside and grown (RESIZE_MIGRATED).
                while (await watch.ResponseStream.MoveNext(new CancellationTokenSource(TimeSpan.FromSeconds(90)).Token)
                    && watch.ResponseStream.Current.TaskState != TaskState.ResizeMigrated)
                {
                }
            }

            await agent.KillAsync();
            await agent.DisposeAsync();

            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var after = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (after.VmState, after.TaskState, after.PowerState));
            Assert.Equal("m1.tiny", after.Flavor.Name);
            Assert.Equal("interrupted", after.Fault.Code);
            using var connection = LibvirtConnection.Open(QemuHost.Uri);
            using var domain = connection.LookupByUuid(uuid);
            var info = domain.GetInfo();
            Assert.Equal((1, 256UL * 1024), (info.VirtualCpus, info.MaxMemoryKiB));
            Assert.Equal(sizeBefore, await VirtualSizeAsync(root));
            Assert.False(File.Exists(Path.Combine(scratch, "instances", uuid.ToString(), "disk.pre-resize")));

            await restarted.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal(VmState.Deleted, (await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.AddSeconds(60))).VmState);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static async Task<long> VirtualSizeAsync(string image)
    {
        using var info = System.Text.Json.JsonDocument.Parse(await QemuImg.InfoJsonAsync(image, CancellationToken.None));
        return info.RootElement.GetProperty("virtual-size").GetInt64();
    }

    [SkippableFact]
    public async Task An_agent_killed_during_a_spawn_leaves_either_a_running_instance_or_an_error_with_nothing_behind()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-crash-spawn");
        var uuid = Guid.NewGuid();
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        var settings = new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri, ["ImageServiceUrl"] = images.Url };
        try
        {
            var agent = await AgentProcess.StartAsync(settings, scratch);
            using (var watch = agent.Client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid.ToString() }))
            {
                await agent.Client.SpawnAsync(new SpawnRequest
                {
                    InstanceUuid = uuid.ToString(),
                    Name = "crash-spawn",
                    Flavor = new Api.V1.Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
                    ImageId = images.ImageId,
                    ProjectId = "p1",
                    UserId = "u1",
                });

                // Kill -9 the moment the spawn reaches BLOCK_DEVICE_MAPPING (image download, overlay).
                while (await watch.ResponseStream.MoveNext(new CancellationTokenSource(TimeSpan.FromSeconds(60)).Token)
                    && watch.ResponseStream.Current.TaskState != TaskState.BlockDeviceMapping)
                {
                }
            }

            await agent.KillAsync();
            await agent.DisposeAsync();

            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var after = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            using var connection = LibvirtConnection.Open(QemuHost.Uri);
            using var domain = connection.TryLookupByUuid(uuid);
            Assert.Equal(TaskState.None, after.TaskState);
            if (after.VmState == VmState.Active)
            {
                // libvirt had started the guest before the kill: the spawn is finished, not undone.
                Assert.Equal(DomainState.Running, domain?.GetState().State);
            }
            else
            {
                Assert.Equal((VmState.Error, PowerState.Nostate), (after.VmState, after.PowerState));
                Assert.Equal("interrupted", after.Fault.Code);
                Assert.Null(domain);
                Assert.False(Directory.Exists(Path.Combine(scratch, "instances", uuid.ToString())), "the partial instance folder was removed");
            }

            await restarted.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal(VmState.Deleted, (await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.AddSeconds(60))).VmState);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>A running guest built the way the agent builds one, left for the agent to adopt at start.</summary>
    private async Task DefineGuestOfOursAsync(string scratch, Guid uuid)
    {
        var settings = new HostSettings { VirtType = VirtType.Qemu, InstancesDirectory = Path.Combine(scratch, "instances"), DirectIoSupported = false };
        var directory = Path.Combine(settings.InstancesDirectory, uuid.ToString());
        Directory.CreateDirectory(directory);
        File.SetUnixFileMode(settings.InstancesDirectory, (UnixFileMode)0b111_101_101);
        var disk = Path.Combine(directory, "disk");
        await QemuImg.CreateOverlayAsync(host.Guest.Disk, "qcow2", disk, null, CancellationToken.None);
        var spec = new InstanceSpec
        {
            Uuid = uuid,
            Name = "crash-test",
            Flavor = new Instances.Model.Flavor("m1.tiny", 1, 256, RootGiB: 1),
            Image = new ImageMeta("a1b2c3d4-0000-4000-8000-000000000003"),
            Owner = new InstanceOwner("6f3e1a2b3c4d4e5f8a9b0c1d2e3f4a5b", "0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5"),
            BlockDevices = [new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(disk, DiskFormat.Qcow2)) { BootIndex = 0 }],
        };
        using var connection = LibvirtConnection.Open(QemuHost.Uri);
        using var domain = connection.DefineXml(new DomainXmlBuilder(settings).Build(spec));
        domain.Create();
    }
}
