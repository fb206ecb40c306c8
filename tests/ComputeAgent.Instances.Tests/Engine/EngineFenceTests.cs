using System.Xml.Linq;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// Late libvirt calls of a killed agent (issue 13 item 10), made deterministic on test:///default:
/// the call's result (a domain defined for an instance the records say is deleted or cleaned up,
/// a definition with a flavor the record no longer has) is put in libvirt behind the engine's back,
/// before its start or while it runs.
/// </summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class EngineFenceTests : IDisposable
{
    private const string Uri = "test:///default";
    private static readonly Flavor OldFlavor = new("m1.small", 2, 2048, RootGiB: 20);
    private static readonly Flavor NewFlavor = new("m1.large", 4, 4096, RootGiB: 20);

    // Events are the only way there while the engine runs: no reconcile pass comes in a test's time.
    private static readonly EngineOptions NoReconcilePass = new() { ReconcileInterval = TimeSpan.FromHours(1), GracefulStopTimeout = TimeSpan.FromSeconds(5) };
    private readonly LibvirtConnection behindTheBack = LibvirtConnection.Open(Uri);
    private readonly List<Guid> defined = [];
    private readonly string scratch = RepositoryPaths.CreateScratch("engine");

    private string Instances => Path.Combine(scratch, "instances");

    public void Dispose()
    {
        DomainCleanup.Remove(Uri, [.. defined]);
        behindTheBack.Dispose();
    }

    [Fact]
    public async Task At_start_a_domain_of_a_deleted_instance_is_reaped_with_its_folder_and_not_adopted()
    {
        var uuid = Guid.NewGuid();
        await using var harness = await EngineHarness.StartAsync(Uri, NoReconcilePass, scratch, async store =>
        {
            await RecordDeletedAsync(store, uuid);

            // The dead agent's define and start (and a file of its) finished after its delete.
            DefineLate(uuid, start: true);
            Directory.CreateDirectory(Path.Combine(Instances, uuid.ToString()));
            await File.WriteAllTextAsync(Path.Combine(Instances, uuid.ToString(), "console.log"), "late");
        });

        Assert.Null(harness.Engine.Find(uuid));
        Assert.Null(behindTheBack.TryLookupByUuid(uuid));
        Assert.False(Directory.Exists(Path.Combine(Instances, uuid.ToString())));
        var record = await harness.Store.GetInstanceAsync(uuid);
        Assert.Equal(VmState.Deleted, record!.VmState);
        Assert.NotNull(record.DeletedAt);
        Assert.DoesNotContain(await harness.Store.ListFaultsAsync(uuid), f => f.Code == "adopted");
    }

    [Fact]
    public async Task At_start_a_domain_of_a_spawn_cleaned_up_into_error_is_reaped_but_one_of_an_error_instance_with_its_disks_stays()
    {
        var cleanedUp = Guid.NewGuid();
        var withDisks = Guid.NewGuid();
        await using var harness = await EngineHarness.StartAsync(Uri, NoReconcilePass, scratch, async store =>
        {
            // Recovery had removed the spawn's domain and folder and put it in ERROR; its define came after.
            await RecordAsync(store, cleanedUp, VmState.Error, PowerState.NoState);
            DefineLate(cleanedUp, start: false);

            // ERROR for another reason (its disks are there): the operator's to look at, not ours to reap.
            await RecordAsync(store, withDisks, VmState.Error, PowerState.Shutdown);
            Directory.CreateDirectory(Path.Combine(Instances, withDisks.ToString()));
            await File.WriteAllTextAsync(RootDisk(withDisks), "disk");
            DefineLate(withDisks, start: false);
        });

        Assert.Null(behindTheBack.TryLookupByUuid(cleanedUp));
        var record = harness.Engine.Find(cleanedUp)!;
        Assert.Equal((VmState.Error, TaskState.None, PowerState.NoState), (record.VmState, record.TaskState, record.PowerState));

        using var kept = behindTheBack.TryLookupByUuid(withDisks);
        Assert.NotNull(kept);
        Assert.Equal(VmState.Error, harness.Engine.Find(withDisks)!.VmState);
        Assert.True(File.Exists(RootDisk(withDisks)));
    }

    [Fact]
    public async Task While_running_domains_that_appear_for_deleted_or_cleaned_up_instances_are_reaped()
    {
        var deletedBefore = Guid.NewGuid();
        var cleanedUp = Guid.NewGuid();
        var deletedNow = Guid.NewGuid();
        await using var harness = await EngineHarness.StartAsync(Uri, NoReconcilePass, scratch, async store =>
        {
            await RecordDeletedAsync(store, deletedBefore);
            await RecordAsync(store, cleanedUp, VmState.Error, PowerState.NoState);
            DefineLate(deletedNow, start: false); // adopted at start, then deleted while this engine runs
        });
        await harness.Engine.SubmitAsync(deletedNow, InstanceCommand.Delete, CancellationToken.None);
        await harness.WaitForAsync(deletedNow, VmState.Deleted, TaskState.None, PowerState.NoState);

        // The late defines land now, after recovery (a start right after one could race the reaping: not started).
        DefineLate(deletedBefore, start: false);
        DefineLate(cleanedUp, start: false);
        DefineLate(deletedNow, start: false);

        foreach (var uuid in (Guid[])[deletedBefore, cleanedUp, deletedNow])
        {
            await WaitUntilGoneAsync(uuid);
        }

        Assert.Null(harness.Engine.Find(deletedBefore));
        Assert.Equal((VmState.Error, PowerState.NoState), (harness.Engine.Find(cleanedUp)!.VmState, harness.Engine.Find(cleanedUp)!.PowerState));
        Assert.Equal(VmState.Deleted, harness.Engine.Find(deletedNow)!.VmState);

        // A pass over them finds nothing to adopt or sync: the records are as they were.
        await harness.Engine.ReconcileAsync(CancellationToken.None);
        Assert.Null(harness.Engine.Find(deletedBefore));
        Assert.Equal(VmState.Deleted, (await harness.Store.GetInstanceAsync(deletedBefore))!.VmState);
    }

    [Fact]
    public async Task At_start_a_definition_with_the_flavor_of_a_rolled_back_resize_is_defined_again_from_the_record()
    {
        // Recovery rolled the resize back (record: old flavor), then the dead agent's define of the new flavor landed.
        var uuid = Guid.NewGuid();
        await using var harness = await StartWithStoppedInstanceAsync(uuid, definedWith: NewFlavor);

        AssertDefinedWith(uuid, OldFlavor);
        var record = harness.Engine.Find(uuid)!;
        Assert.Equal((VmState.Stopped, TaskState.None, OldFlavor.Name), (record.VmState, record.TaskState, record.Spec.Flavor.Name));
        Assert.Contains(await harness.Store.ListFaultsAsync(uuid), f => f.Code == "definition_restored" && f.Message.Contains(NewFlavor.Name, StringComparison.Ordinal));
    }

    [Fact]
    public async Task While_running_a_definition_that_changes_behind_an_idle_instance_is_defined_again_from_the_record()
    {
        var uuid = Guid.NewGuid();
        await using var harness = await StartWithStoppedInstanceAsync(uuid, definedWith: OldFlavor);
        AssertDefinedWith(uuid, OldFlavor);

        Define(harness, uuid, NewFlavor);

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline && !(await harness.Store.ListFaultsAsync(uuid)).Any(f => f.Code == "definition_restored"))
        {
            await Task.Delay(50);
        }

        AssertDefinedWith(uuid, OldFlavor);
        Assert.Equal((VmState.Stopped, TaskState.None), (harness.Engine.Find(uuid)!.VmState, harness.Engine.Find(uuid)!.TaskState));
    }

    /// <summary>An engine started on a STOPPED instance of the old flavor whose domain is defined with <paramref name="definedWith"/>.</summary>
    private async Task<EngineHarness> StartWithStoppedInstanceAsync(Guid uuid, Flavor definedWith)
    {
        // Started once first: the domain is built with the engine's own host settings.
        var harness = await EngineHarness.StartAsync(Uri, NoReconcilePass, scratch);
        await harness.RestartAsync(async store =>
        {
            await RecordAsync(store, uuid, VmState.Stopped, PowerState.Shutdown);
            Define(harness, uuid, definedWith);
        });
        return harness;
    }

    private void Define(EngineHarness harness, Guid uuid, Flavor flavor)
    {
        defined.Add(uuid);
        using var domain = behindTheBack.DefineXml(new DomainXmlBuilder(harness.Host).Build(Spec(uuid) with { Flavor = flavor }));
    }

    /// <summary>libvirt's persistent definition: the flavor's vCPUs and memory, and the flavor in the agent's metadata.</summary>
    private void AssertDefinedWith(Guid uuid, Flavor flavor)
    {
        using var domain = behindTheBack.LookupByUuid(uuid);
        var xml = XDocument.Parse(domain.GetXmlDesc(DomainXmlFlags.Inactive)).Root!;
        Assert.Equal(flavor.Vcpus, (int)xml.Element("vcpu")!);
        Assert.Equal(flavor.RamMiB * 1024L, (long)xml.Element("memory")!);
        Assert.Equal(flavor.Name, InstanceMetadata.Parse(xml.ToString())!.Flavor.Name);
    }

    private string RootDisk(Guid uuid) => Path.Combine(Instances, uuid.ToString(), "disk");

    /// <summary>The instance as the agent records it: its root disk in this engine's instances folder, the old flavor, no ports (test:///default has no bridges).</summary>
    private InstanceSpec Spec(Guid uuid) => Samples.Typical(uuid) with
    {
        Flavor = OldFlavor,
        Ports = [],
        BlockDevices = [new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(RootDisk(uuid), DiskFormat.Qcow2)) { BootIndex = 0 }],
    };

    private Task<long> RecordAsync(InstanceStore store, Guid uuid, VmState vm, PowerState power) =>
        store.CommitAsync(new StateChange(uuid, vm, TaskState.None, power, "as the agent left it") { Spec = Spec(uuid) });

    private async Task RecordDeletedAsync(InstanceStore store, Guid uuid)
    {
        await RecordAsync(store, uuid, VmState.Active, PowerState.Running);
        await store.CommitAsync(new StateChange(uuid, VmState.Deleted, TaskState.None, PowerState.NoState, "delete done")
        {
            DeletedAt = new ColumnUpdate<DateTimeOffset?>(DateTimeOffset.UtcNow),
        });
    }

    /// <summary>What a late define (and start) of the dead agent leaves: a domain of ours whose disk is in this engine's instances folder.</summary>
    private void DefineLate(Guid uuid, bool start)
    {
        defined.Add(uuid);
        using var domain = behindTheBack.DefineXml(Samples.TestDriverDomainOfOurs(uuid, RootDisk(uuid)));
        if (start)
        {
            domain.Create();
        }
    }

    /// <summary>Waits (a hang bound, not a speed check) until the domain is gone.</summary>
    private async Task WaitUntilGoneAsync(Guid uuid)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            using var domain = behindTheBack.TryLookupByUuid(uuid);
            if (domain is null)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"the domain {uuid} of a deleted or cleaned-up instance was never reaped");
    }
}
