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

/// <summary>
/// kill -9 of the agent in the middle of a task, then a restart: the interruption is made certain
/// by holding the task's libvirt call (<see cref="LibvirtProxy"/>: libvirtd never receives it) and
/// killing the agent while it waits inside it; the restarted agent's recovery leaves its own evidence.
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class AgentCrashTests(QemuHost host)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    [SkippableFact]
    public async Task An_agent_killed_inside_a_suspends_managed_save_settles_the_instance_to_what_libvirt_shows_on_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-crash");
        var uuid = Guid.NewGuid();
        await DefineGuestOfOursAsync(scratch, uuid);
        try
        {
            await using (var proxy = new LibvirtProxy())
            {
                var agent = await AgentProcess.StartAsync(new Dictionary<string, string> { ["LibvirtUri"] = proxy.Uri }, scratch);
                var adopted = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
                Assert.Equal((VmState.Active, PowerState.Running), (adopted.VmState, adopted.PowerState));

                proxy.Hold(LibvirtProcedure.DomainManagedSave);
                var suspending = await agent.Client.SuspendAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
                Assert.Equal(TaskState.Suspending, suspending.Instance.TaskState);
                await proxy.WaitHeldAsync(Bound);
                await agent.KillAsync();
                await agent.DisposeAsync();
            }

            // libvirtd never saved the guest: it still runs, and recovery says so.
            await using var restarted = await AgentProcess.StartAsync(new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri }, scratch);
            var after = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (after.VmState, after.TaskState, after.PowerState));
            Assert.Equal(("interrupted", "the agent stopped during suspend (at SUSPENDING); the instance is as libvirt shows it: ACTIVE / RUNNING"), (after.Fault.Code, after.Fault.Message));
            using var connection = LibvirtConnection.Open(QemuHost.Uri);
            using (var domain = connection.LookupByUuid(uuid))
            {
                Assert.Equal(DomainState.Running, domain.GetState().State);
            }

            // And it is usable again: delete it through the restarted agent.
            await restarted.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            var deleted = await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.Add(Bound));
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
    public async Task An_agent_killed_inside_a_resizes_define_rolls_it_back_on_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-crash-resize");
        var uuid = Guid.NewGuid();

        // Zero: the guest is destroyed at once, no boot to wait for before its ACPI button works.
        var settings = new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri, ["GracefulStopTimeoutSeconds"] = "0" };
        await DefineGuestOfOursAsync(scratch, uuid);
        var root = Path.Combine(scratch, "instances", uuid.ToString(), "disk");
        var saved = Path.Combine(scratch, "instances", uuid.ToString(), "disk.pre-resize");
        try
        {
            var sizeBefore = await VirtualSizeAsync(root);
            await using (var proxy = new LibvirtProxy())
            {
                var agent = await AgentProcess.StartAsync(new Dictionary<string, string>(settings) { ["LibvirtUri"] = proxy.Uri }, scratch);
                proxy.Hold(LibvirtProcedure.DomainDefineXmlFlags);
                await agent.Client.ResizeAsync(new ResizeRequest
                {
                    InstanceUuid = uuid.ToString(),
                    Flavor = new Api.V1.Flavor { Name = "m1.small", Vcpus = 2, RamMib = 512, RootGib = 2 },
                });

                // Held at the define of the new flavor: the guest off, its disk set aside and grown.
                await proxy.WaitHeldAsync(Bound);
                var held = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
                Assert.Equal(TaskState.ResizeFinish, held.TaskState);
                Assert.Equal(2L * 1024 * 1024 * 1024, await VirtualSizeAsync(root));
                Assert.True(File.Exists(saved));
                await agent.KillAsync();
                await agent.DisposeAsync();
            }

            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var after = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (after.VmState, after.TaskState, after.PowerState));
            Assert.Equal("m1.tiny", after.Flavor.Name);
            Assert.Equal(("interrupted", "the agent stopped during resize (at RESIZE_FINISH); it was rolled back: the instance is ACTIVE with its previous flavor and disk"), (after.Fault.Code, after.Fault.Message));
            using var connection = LibvirtConnection.Open(QemuHost.Uri);
            using (var domain = connection.LookupByUuid(uuid))
            {
                var info = domain.GetInfo();
                Assert.Equal((1, 256UL * 1024), (info.VirtualCpus, info.MaxMemoryKiB));
                Assert.Equal(DomainState.Running, domain.GetState().State);
            }

            Assert.Equal(sizeBefore, await VirtualSizeAsync(root));
            Assert.False(File.Exists(saved), "the set-aside disk was moved back");

            await restarted.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal(VmState.Deleted, (await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.Add(Bound))).VmState);
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
    public async Task An_agent_killed_inside_a_spawns_domain_start_removes_the_partial_instance_on_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-crash-spawn");
        var uuid = Guid.NewGuid();
        var directory = Path.Combine(scratch, "instances", uuid.ToString());
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        var settings = new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri, ["ImageServiceUrl"] = images.Url };
        using var connection = LibvirtConnection.Open(QemuHost.Uri);
        try
        {
            await using (var proxy = new LibvirtProxy())
            {
                var agent = await AgentProcess.StartAsync(new Dictionary<string, string>(settings) { ["LibvirtUri"] = proxy.Uri }, scratch);
                proxy.Hold(LibvirtProcedure.DomainCreateWithFlags);
                await agent.Client.SpawnAsync(new SpawnRequest
                {
                    InstanceUuid = uuid.ToString(),
                    Name = "crash-spawn",
                    Flavor = new Api.V1.Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
                    ImageId = images.ImageId,
                    ProjectId = "p1",
                    UserId = "u1",
                });

                // Held at the start of the guest: the image fetched, the overlay made, the domain defined.
                await proxy.WaitHeldAsync(Bound);
                var held = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
                Assert.Equal((VmState.Building, TaskState.Spawning), (held.VmState, held.TaskState));
                Assert.True(File.Exists(Path.Combine(directory, "disk")));
                using (var defined = connection.LookupByUuid(uuid))
                {
                    Assert.Equal(DomainState.Shutoff, defined.GetState().State);
                }

                await agent.KillAsync();
                await agent.DisposeAsync();
            }

            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var after = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Error, TaskState.None, PowerState.Nostate), (after.VmState, after.TaskState, after.PowerState));
            Assert.Equal(("interrupted", "the agent stopped while spawning (at SPAWNING); the partial domain and files were removed: delete the instance and spawn it again"), (after.Fault.Code, after.Fault.Message));
            Assert.Null(connection.TryLookupByUuid(uuid));
            Assert.False(Directory.Exists(directory), "the partial instance folder was removed");

            await restarted.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal(VmState.Deleted, (await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.Add(Bound))).VmState);
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, uuid);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [SkippableFact]
    public async Task An_agent_killed_inside_a_live_snapshot_leaves_no_mirror_job_copy_or_queued_image_after_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-crash-snapshot");
        var uuid = Guid.NewGuid();
        var delta = Path.Combine(scratch, "instances", uuid.ToString(), "snapshot.delta");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        var settings = new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri, ["ImageServiceUrl"] = images.Url };
        using var http = new HttpClient { BaseAddress = new Uri(images.Url) };
        using var connection = LibvirtConnection.Open(QemuHost.Uri);
        await DefineGuestOfOursAsync(scratch, uuid);
        try
        {
            string queued;
            await using (var proxy = new LibvirtProxy())
            {
                var agent = await AgentProcess.StartAsync(new Dictionary<string, string>(settings) { ["LibvirtUri"] = proxy.Uri }, scratch);
                proxy.Hold(LibvirtProcedure.DomainBlockJobAbort);
                queued = (await agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid.ToString(), Name = "cut-short" })).ImageId;

                // Held where the copy is cut off: QEMU mirrors the disk into the delta, the image waits queued.
                await proxy.WaitHeldAsync(Bound);
                Assert.Equal(TaskState.ImageSnapshot, (await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() })).TaskState);
                using (var domain = connection.LookupByUuid(uuid))
                {
                    Assert.NotNull(domain.GetBlockJobInfo("vda"));
                }

                Assert.True(File.Exists(delta));
                Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"/v2/images/{queued}")).StatusCode);
                await agent.KillAsync();
                await agent.DisposeAsync();
            }

            await using var restarted = await AgentProcess.StartAsync(settings, scratch);
            var after = await restarted.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (after.VmState, after.TaskState, after.PowerState));
            Assert.Equal(("interrupted", $"the agent stopped during snapshot (at IMAGE_SNAPSHOT); the instance is as libvirt shows it: ACTIVE / RUNNING; its queued image {queued} was deleted from the image service"), (after.Fault.Code, after.Fault.Message));
            using (var domain = connection.LookupByUuid(uuid))
            {
                Assert.Null(domain.GetBlockJobInfo("vda"));
                Assert.Equal(DomainState.Running, domain.GetState().State);
            }

            Assert.False(File.Exists(delta), "the mirror's delta was removed");
            Assert.Equal(System.Net.HttpStatusCode.NotFound, (await http.GetAsync($"/v2/images/{queued}")).StatusCode);

            await restarted.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Equal(VmState.Deleted, (await restarted.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid.ToString(), VmState = VmState.Deleted }, deadline: DateTime.UtcNow.Add(Bound))).VmState);
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
