using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Instances.Tests.Images;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// The recovery branches at start (issue 19 item 5), on libvirt's test:///default: each test
/// leaves the store, the instance's files and the domain as a SIGKILL at one step of a task
/// leaves them (the journal entry the task had written, through the store's own commit), starts
/// a new engine on them and checks what recovery made of it.
/// </summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class EngineRecoveryTests : IAsyncLifetime
{
    private const string Uri = DomainXmlLibvirtCollection.Uri;
    private const string ImageId = "a1b2c3d4-0000-4000-8000-000000000001";
    private readonly LibvirtConnection behindTheBack = LibvirtConnection.Open(Uri);
    private readonly List<Guid> defined = [];
    private EngineHarness harness = null!;

    public async Task InitializeAsync()
    {
        defined.Add(EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: true));
        defined.Add(EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: true));
        defined.Add(EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: false));
        harness = await EngineHarness.StartAsync(Uri);
    }

    public async Task DisposeAsync()
    {
        await harness.DisposeAsync();
        DomainCleanup.Remove(Uri, [.. defined]);
        behindTheBack.Dispose();
    }

    [Fact]
    public async Task An_interrupted_rescue_is_rolled_back_to_the_original_domain_and_the_rescue_disk_goes()
    {
        var uuid = defined[0];
        var (root, rescue) = (RootDisk(uuid), InstanceFile(uuid, "disk.rescue"));
        await harness.RestartAsync(async store =>
        {
            // Killed once the rescue domain ran: its overlay journaled, the domain redefined on it and started.
            WriteFile(root, "the instance's root disk");
            WriteFile(rescue, "the rescue overlay");
            Redefine(uuid, Samples.TestDriverDomainOfOurs(uuid, rescue), start: true);
            await store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.Rescuing, PowerState.Running, "rescue: rescue_disk")
            {
                Journal = JournalChange.Set(InstanceCommand.Rescue, new Dictionary<string, string> { ["rescue_disk"] = rescue }),
            });
        });

        await AssertSettledAsync(uuid, (VmState.Active, PowerState.Running), "the agent stopped during rescue (at RESCUING); it was rolled back: the instance is ACTIVE with its previous flavor and disk");
        Assert.False(File.Exists(rescue), "the rescue overlay was removed");
        Assert.Equal("the instance's root disk", await File.ReadAllTextAsync(root));
        Assert.Equal(new[] { root }, DefinedDisks(uuid));
        Assert.Equal(DomainState.Running, State(uuid));
    }

    [Fact]
    public async Task An_interrupted_rebuild_puts_the_old_root_disk_back_and_boots_the_old_image()
    {
        var uuid = defined[0];
        var (root, fresh, old) = (RootDisk(uuid), InstanceFile(uuid, "disk.rebuild"), InstanceFile(uuid, "disk.pre-rebuild"));
        await harness.RestartAsync(async store =>
        {
            // Killed between the swap of the disks and the define: the guest stopped, the old root
            // set aside, the new image's overlay in its place.
            WriteFile(old, "the old root disk");
            WriteFile(root, "the new image's overlay");
            using (var domain = behindTheBack.LookupByUuid(uuid))
            {
                domain.Destroy();
            }

            await store.CommitAsync(new StateChange(uuid, VmState.Active, TaskState.RebuildSpawning, PowerState.Shutdown, "rebuild: pre_rebuild_disk")
            {
                Journal = JournalChange.Set(InstanceCommand.Rebuild, new Dictionary<string, string> { ["rebuild_disk"] = fresh, ["pre_rebuild_disk"] = old }),
            });
        });

        await AssertSettledAsync(uuid, (VmState.Active, PowerState.Running), "the agent stopped during rebuild (at REBUILD_SPAWNING); it was rolled back: the instance is ACTIVE with its previous flavor and disk");
        Assert.Equal("the old root disk", await File.ReadAllTextAsync(root));
        Assert.False(File.Exists(old), "the set-aside disk was moved back");
        Assert.False(File.Exists(fresh));
        Assert.Equal(ImageId, harness.Engine.Find(uuid)!.Spec.Image.Id);
        Assert.Equal(ImageId, InstanceMetadata.Parse(DomainXml(uuid, DomainXmlFlags.Inactive))!.ImageId);
        Assert.Equal(new[] { root }, DefinedDisks(uuid));
        Assert.Equal(DomainState.Running, State(uuid));
    }

    [Fact]
    public async Task An_interrupted_unrescue_is_finished_the_original_domain_running_and_the_saved_xml_forgotten()
    {
        var uuid = defined[0];
        var rescue = InstanceFile(uuid, "disk.rescue");
        await harness.RestartAsync(async store =>
        {
            // A rescued instance whose unrescue was accepted, then the agent killed before the redefine.
            var original = DomainXml(uuid, DomainXmlFlags.Inactive);
            WriteFile(rescue, "the rescue overlay");
            Redefine(uuid, Samples.TestDriverDomainOfOurs(uuid, rescue), start: true);
            await store.CommitAsync(new StateChange(uuid, VmState.Rescued, TaskState.Unrescuing, PowerState.Running, "unrescue accepted")
            {
                PreRescueXml = new ColumnUpdate<string?>(original),
                Journal = JournalChange.Set(InstanceCommand.Unrescue, new Dictionary<string, string>()),
            });
        });

        await AssertSettledAsync(uuid, (VmState.Active, PowerState.Running), "the agent stopped during unrescue; it was finished: the original domain runs again");
        Assert.False(File.Exists(rescue), "the rescue overlay was removed");
        Assert.Empty(DefinedDisks(uuid)); // the original test domain has no disk; the rescue one had the overlay
        Assert.Equal(DomainState.Running, State(uuid));
        Assert.Null(harness.Engine.Find(uuid)!.PreRescueXml);
        Assert.Null((await harness.Store.ListInstancesAsync(includeDeleted: false)).Single(r => r.Uuid == uuid).PreRescueXml);
    }

    [Theory]
    [InlineData(InstanceCommand.Snapshot, TaskState.ImageUploading, "the agent stopped during snapshot (at IMAGE_UPLOADING); the instance is as libvirt shows it: STOPPED / SHUTDOWN")]
    [InlineData(InstanceCommand.Backup, TaskState.ImageBackup, "the agent stopped during backup (at IMAGE_BACKUP); the instance is as libvirt shows it: STOPPED / SHUTDOWN")]
    public async Task An_interrupted_snapshot_of_a_stopped_guest_is_abandoned_and_its_flattened_copy_removed(InstanceCommand command, TaskState step, string fault)
    {
        var uuid = defined[2];
        var (root, flat) = (RootDisk(uuid), InstanceFile(uuid, "snapshot.qcow2"));
        await harness.RestartAsync(async store =>
        {
            // Killed while the flattened copy was uploading (a stopped guest's overlay is read directly: no delta).
            WriteFile(root, "the instance's root disk");
            WriteFile(flat, "half of a flattened copy");
            await store.CommitAsync(new StateChange(uuid, VmState.Stopped, step, PowerState.Shutdown, $"{command}: snapshot_image")
            {
                Journal = JournalChange.Set(command, new Dictionary<string, string> { ["snapshot_image"] = flat }),
            });
        });

        await AssertSettledAsync(uuid, (VmState.Stopped, PowerState.Shutdown), fault);
        Assert.False(File.Exists(flat), "the flattened copy was removed");
        Assert.Equal("the instance's root disk", await File.ReadAllTextAsync(root));
        Assert.Equal(DomainState.Shutoff, State(uuid));
    }

    [Theory]
    [InlineData(InstanceCommand.Snapshot, TaskState.ImageUploading, "snapshot (at IMAGE_UPLOADING)")]
    [InlineData(InstanceCommand.Backup, TaskState.ImageBackup, "backup (at IMAGE_BACKUP)")]
    public async Task The_queued_image_an_interrupted_snapshot_created_is_deleted_through_the_agents_own_access(InstanceCommand command, TaskState step, string during)
    {
        await using var glance = await FakeGlance.StartAsync();
        var queued = glance.Add(new FakeImage { Id = Guid.NewGuid().ToString(), Data = [], Status = "queued" }).Id;
        var kept = glance.Add(new FakeImage { Id = Guid.NewGuid().ToString(), Data = [] }).Id;
        harness.ImageService = new AgentImageService(new GlanceClient(new HttpClient(), glance.Endpoint), FakeGlance.Token);
        var uuid = defined[2];
        await InterruptSnapshotAsync(uuid, command, step, queued);

        await AssertSettledAsync(uuid, (VmState.Stopped, PowerState.Shutdown), $"the agent stopped during {during}; the instance is as libvirt shows it: STOPPED / SHUTDOWN; its queued image {queued} was deleted from the image service");
        Assert.False(glance.Has(queued), "the queued image was deleted");
        Assert.True(glance.Has(kept), "only the interrupted task's image was deleted");
        Assert.Equal(FakeGlance.Token, glance.LastToken);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_queued_image_recovery_cannot_delete_is_named_in_the_fault_with_the_command_that_deletes_it(bool imageServiceConfigured)
    {
        await using var glance = await FakeGlance.StartAsync();
        var queued = glance.Add(new FakeImage { Id = Guid.NewGuid().ToString(), Data = [], Status = "queued" }).Id;

        // The agent's own token is not one this image service takes (a Keystone token that expired).
        harness.ImageService = imageServiceConfigured ? new AgentImageService(new GlanceClient(new HttpClient(), glance.Endpoint), "gAAAAAB-expired") : null;
        var uuid = defined[2];
        await InterruptSnapshotAsync(uuid, InstanceCommand.Snapshot, TaskState.ImageUploading, queued);

        var why = imageServiceConfigured
            ? "Glance refused the token (401 Unauthorized): it is missing, expired or invalid; retry with a fresh token"
            : "no image service is configured (Agent:ImageServiceUrl)";
        await AssertSettledAsync(uuid, (VmState.Stopped, PowerState.Shutdown), $"the agent stopped during snapshot (at IMAGE_UPLOADING); the instance is as libvirt shows it: STOPPED / SHUTDOWN; its queued image {queued} could not be deleted ({why}): delete it with `openstack image delete {queued}`");
        Assert.True(glance.Has(queued), "nothing deleted the image");
        Assert.Equal(imageServiceConfigured ? "gAAAAAB-expired" : null, glance.LastToken);
    }

    /// <summary>What a kill during a stopped guest's snapshot upload leaves: the flattened copy half written, the image it created journaled.</summary>
    private Task InterruptSnapshotAsync(Guid uuid, InstanceCommand command, TaskState step, string queuedImage) =>
        harness.RestartAsync(async store =>
        {
            WriteFile(InstanceFile(uuid, "snapshot.qcow2"), "half of a flattened copy");
            await store.CommitAsync(new StateChange(uuid, VmState.Stopped, step, PowerState.Shutdown, $"{command}: snapshot_image")
            {
                Journal = JournalChange.Set(command, new Dictionary<string, string>
                {
                    [InstanceDriver.JournalSnapshotQueuedImage] = queuedImage,
                    ["snapshot_image"] = InstanceFile(uuid, "snapshot.qcow2"),
                }),
            });
        });

    [Fact]
    public async Task A_task_recovery_cannot_settle_puts_that_instance_in_error_and_the_others_are_served()
    {
        var (broken, other) = (defined[0], defined[1]);
        await harness.RestartAsync(async store =>
        {
            // The saved pre-rescue definition is damaged (cut short): libvirt refuses to define it again.
            var original = DomainXml(broken, DomainXmlFlags.Inactive);
            await store.CommitAsync(new StateChange(broken, VmState.Rescued, TaskState.Unrescuing, PowerState.Running, "unrescue accepted")
            {
                PreRescueXml = new ColumnUpdate<string?>(original[..(original.Length / 2)]),
                Journal = JournalChange.Set(InstanceCommand.Unrescue, new Dictionary<string, string>()),
            });
        });

        // The unrescue had destroyed the rescue guest before libvirt refused the definition: it shows shut off.
        var record = harness.Engine.Find(broken)!;
        Assert.Equal((VmState.Error, TaskState.None, PowerState.Shutdown), (record.VmState, record.TaskState, record.PowerState));
        Assert.Empty(await harness.Store.ListJournalAsync());
        var fault = (await harness.Store.ListFaultsAsync(broken))[^1];
        Assert.Equal("recovery_failed", fault.Code);
        Assert.StartsWith("the agent stopped during unrescue and could not settle it at start (", fault.Message, StringComparison.Ordinal);
        Assert.EndsWith("); check the domain with virsh, then delete or rebuild the instance", fault.Message, StringComparison.Ordinal);
        Assert.Contains("LibvirtException", fault.Details, StringComparison.Ordinal);

        // One instance that cannot be settled does not keep the agent from the others.
        Assert.True(harness.Engine.IsAlive);
        await harness.Engine.SubmitAsync(other, InstanceCommand.Pause, CancellationToken.None);
        await harness.WaitForAsync(other, VmState.Paused, TaskState.None, PowerState.Paused);
    }

    [Fact]
    public async Task A_rollback_whose_recorded_spec_no_longer_builds_fails_that_instance_and_the_agent_still_starts()
    {
        var (broken, other) = (defined[0], defined[1]);
        var spec = harness.Engine.Find(broken)!.Spec;
        await harness.RestartAsync(async store =>
        {
            // A record the domain XML builder now refuses (a kernel image as the root disk), caught in a rescue.
            await store.CommitAsync(new StateChange(broken, VmState.Active, TaskState.Rescuing, PowerState.Running, "rescue accepted")
            {
                Spec = spec with { Image = new Model.ImageMeta(ImageId, "aki", "aki") },
                Journal = JournalChange.Set(InstanceCommand.Rescue, new Dictionary<string, string>()),
            });
        });

        var record = harness.Engine.Find(broken)!;
        Assert.Equal((VmState.Error, TaskState.None, PowerState.Running), (record.VmState, record.TaskState, record.PowerState));
        Assert.Empty(await harness.Store.ListJournalAsync());
        var fault = (await harness.Store.ListFaultsAsync(broken))[^1];
        Assert.Equal("recovery_failed", fault.Code);
        Assert.Contains("image.disk_format", fault.Message, StringComparison.Ordinal);
        Assert.Equal((VmState.Active, PowerState.Running), (harness.Engine.Find(other)!.VmState, harness.Engine.Find(other)!.PowerState));
    }

    /// <summary>The evidence every settled recovery leaves: the states, no journal entry, the "interrupted" fault with its exact message.</summary>
    private async Task AssertSettledAsync(Guid uuid, (VmState Vm, PowerState Power) expected, string fault)
    {
        var record = harness.Engine.Find(uuid)!;
        Assert.Equal((expected.Vm, TaskState.None, expected.Power), (record.VmState, record.TaskState, record.PowerState));
        Assert.Empty(await harness.Store.ListJournalAsync());
        var last = (await harness.Store.ListFaultsAsync(uuid))[^1];
        Assert.Equal("interrupted", last.Code);
        Assert.Equal(fault, last.Message);
    }

    private string RootDisk(Guid uuid) => harness.Engine.Driver.RootDiskPath(uuid);

    private string InstanceFile(Guid uuid, string name) => Path.Combine(harness.Engine.Driver.InstanceDirectory(uuid), name);

    private static void WriteFile(string path, string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
    }

    /// <summary>What a task's redefine leaves: the running guest replaced by one of <paramref name="xml"/>.</summary>
    private void Redefine(Guid uuid, string xml, bool start)
    {
        using (var current = behindTheBack.LookupByUuid(uuid))
        {
            if (current.IsActive)
            {
                current.Destroy();
            }
        }

        using var domain = behindTheBack.DefineXml(xml);
        if (start)
        {
            domain.Create();
        }
    }

    private string DomainXml(Guid uuid, DomainXmlFlags flags)
    {
        using var domain = behindTheBack.LookupByUuid(uuid);
        return domain.GetXmlDesc(flags);
    }

    private List<string> DefinedDisks(Guid uuid) => [.. InstanceDriver.FileDisks(DomainXml(uuid, DomainXmlFlags.Inactive)).Select(d => d.File)];

    private DomainState State(Guid uuid)
    {
        using var domain = behindTheBack.LookupByUuid(uuid);
        return domain.GetState().State;
    }
}
