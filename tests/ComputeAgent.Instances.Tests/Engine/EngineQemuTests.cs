using System.Xml.Linq;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>The engine driving real QEMU guests (TCG) under the host's libvirtd.</summary>
[Collection(DomainXmlQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class EngineQemuTests(QemuHost host)
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    [SkippableFact]
    public async Task Spawn_walks_the_seeds_sequence_then_unexplained_power_off_and_qemu_death_are_synced_and_delete_leaves_nothing()
    {
        host.SkipIfUnavailable();
        await using var harness = await EngineHarness.StartAsync(QemuHost.Uri);
        using var behindTheBack = LibvirtConnection.Open(QemuHost.Uri);
        var spec = TinySpec(Guid.NewGuid());
        var uuid = spec.Uuid;

        var accepted = await harness.Engine.SpawnAsync(spec, _ => Task.FromResult(host.Guest.Disk), CancellationToken.None);
        Assert.Equal((VmState.Building, TaskState.Scheduling, PowerState.NoState), (accepted.VmState, accepted.TaskState, accepted.PowerState));

        // Idempotent by UUID: the same spawn again is the same instance, not a second guest.
        var again = await harness.Engine.SpawnAsync(spec, _ => Task.FromResult(host.Guest.Disk), CancellationToken.None);
        Assert.Equal(uuid, again.Uuid);

        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running, seconds: 120);
        var sequence = (await harness.Store.ReadEventsAsync(0, 1000)).Where(e => e.Uuid == uuid).Select(e => (e.NewVmState, e.NewTaskState, e.NewPowerState)).ToList();
        Assert.Equal(
            [
                (VmState.Building, TaskState.Scheduling, PowerState.NoState),
                (VmState.Building, TaskState.Networking, PowerState.NoState),
                (VmState.Building, TaskState.BlockDeviceMapping, PowerState.NoState),
                (VmState.Building, TaskState.Spawning, PowerState.NoState),
                (VmState.Active, TaskState.None, PowerState.Running),
            ],
            sequence);
        Assert.Single(behindTheBack.ListAllDomains(), d => { using (d) { return d.Uuid == uuid; } });
        await EventWaits.WaitForConsoleLineAsync(harness.Host.ConsoleLogPath(uuid), host.Guest.ReadyLine, Boot);

        // The guest powers off (ACPI from outside the agent): STOPPED, not ERROR.
        using (var domain = behindTheBack.LookupByUuid(uuid))
        {
            domain.Shutdown(DomainShutdownFlags.AcpiPowerButton);
        }

        var stopped = await harness.WaitForAsync(uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown);
        Assert.StartsWith("libvirt event", stopped.Cause, StringComparison.Ordinal);

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Start, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);
        await EventWaits.WaitForConsoleLineAsync(harness.Host.ConsoleLogPath(uuid), host.Guest.ReadyLine, Boot);

        // Someone runs virsh suspend / resume behind the agent's back.
        (await ProcessRunner.RunAsync("virsh", ["-c", QemuHost.Uri, "suspend", HostSettings.DomainName(uuid)], TimeSpan.FromSeconds(30))).EnsureSuccess("virsh suspend");
        await harness.WaitForAsync(uuid, VmState.Paused, TaskState.None, PowerState.Paused);
        (await ProcessRunner.RunAsync("virsh", ["-c", QemuHost.Uri, "resume", HostSettings.DomainName(uuid)], TimeSpan.FromSeconds(30))).EnsureSuccess("virsh resume");
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);

        // kill -9 of QEMU: the guest died under us.
        var pid = (await ProcessRunner.RunAsync("pgrep", ["-f", $"guest={HostSettings.DomainName(uuid)}"], TimeSpan.FromSeconds(10))).EnsureSuccess("pgrep").StandardOutput.Trim().Split('\n')[0];
        (await ProcessRunner.RunAsync("kill", ["-9", pid], TimeSpan.FromSeconds(10))).EnsureSuccess("kill -9");
        var crashed = await harness.WaitForAsync(uuid, VmState.Error, TaskState.None, PowerState.Crashed);
        Assert.Contains(await harness.Store.ListFaultsAsync(uuid), f => f.Code == "power_sync");

        // Delete from ERROR: domain, overlay, console log and record all gone; the stream says DELETED.
        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Delete, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        Assert.Null(behindTheBack.TryLookupByUuid(uuid));
        Assert.False(Directory.Exists(harness.Driver().InstanceDirectory(uuid)));
        Assert.DoesNotContain(await harness.Store.ListInstancesAsync(includeDeleted: false), r => r.Uuid == uuid);
        Assert.Equal(VmState.Deleted, (await harness.Store.GetInstanceAsync(uuid))!.VmState);
    }

    [SkippableFact]
    public async Task A_guest_that_powers_itself_off_from_inside_is_stopped_not_errored()
    {
        host.SkipIfUnavailable();
        await using var harness = await EngineHarness.StartAsync(QemuHost.Uri);
        var spec = TinySpec(Guid.NewGuid()) with
        {
            Image = new ImageMeta("a1b2c3d4-0000-4000-8000-000000000002", Properties: new Dictionary<string, string>
            {
                ["kernel_id"] = "kernel-image",
                ["ramdisk_id"] = "ramdisk-image",
                ["os_command_line"] = "console=ttyS0 compute_agent.poweroff_after=2",
            }),
            KernelBoot = new KernelBoot(host.Guest.Kernel, host.Guest.Initrd),
        };
        await harness.Engine.SpawnAsync(spec, _ => Task.FromResult(host.Guest.Disk), CancellationToken.None);
        await harness.WaitForAsync(spec.Uuid, VmState.Active, TaskState.None, PowerState.Running, seconds: 120);

        // Nothing is asked of the agent: the guest runs poweroff by itself.
        var stopped = await harness.WaitForAsync(spec.Uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown, seconds: 120);
        Assert.StartsWith("libvirt event", stopped.Cause, StringComparison.Ordinal);
        await EventWaits.WaitForConsoleLineAsync(harness.Host.ConsoleLogPath(spec.Uuid), host.Guest.SelfPowerOffLine, Boot);
        Assert.Empty(await harness.Store.ListFaultsAsync(spec.Uuid));
    }

    [SkippableFact]
    public async Task A_spawn_from_an_unusable_image_ends_in_error_with_a_fault_and_leaves_nothing_behind()
    {
        host.SkipIfUnavailable();
        await using var harness = await EngineHarness.StartAsync(QemuHost.Uri);
        var notAnImage = Path.Combine(harness.Scratch, "not-an-image.qcow2");
        await File.WriteAllTextAsync(notAnImage, "this is not a disk image");
        var spec = TinySpec(Guid.NewGuid());

        await harness.Engine.SpawnAsync(spec, _ => Task.FromResult(notAnImage), CancellationToken.None);
        await harness.WaitForAsync(spec.Uuid, VmState.Error, TaskState.None, PowerState.NoState);

        var fault = Assert.Single(await harness.Store.ListFaultsAsync(spec.Uuid));
        Assert.Contains("spawn failed", fault.Message, StringComparison.Ordinal);
        Assert.Contains("removed", fault.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(harness.Driver().InstanceDirectory(spec.Uuid)));
        using var connection = LibvirtConnection.Open(QemuHost.Uri);
        Assert.Null(connection.TryLookupByUuid(spec.Uuid));
        Assert.Empty(await harness.Store.ListJournalAsync());
    }

    [SkippableFact]
    public async Task Spawns_beyond_the_build_limit_wait_in_scheduling_and_a_delete_preempts_a_spawn_in_flight()
    {
        host.SkipIfUnavailable();
        await using var harness = await EngineHarness.StartAsync(QemuHost.Uri, new EngineOptions { MaxConcurrentBuilds = 1, GracefulStopTimeout = TimeSpan.FromSeconds(30) });
        var first = TinySpec(Guid.NewGuid());
        var second = TinySpec(Guid.NewGuid());
        await harness.Engine.SpawnAsync(first, _ => Task.FromResult(host.Guest.Disk), CancellationToken.None);
        await harness.Engine.SpawnAsync(second, _ => Task.FromResult(host.Guest.Disk), CancellationToken.None);

        // The second waits in SCHEDULING while the only build slot is taken: delete it there.
        Assert.Equal(TaskState.Scheduling, harness.Engine.Find(second.Uuid)!.TaskState);
        var deleting = await harness.Engine.SubmitAsync(second.Uuid, InstanceCommand.Delete, CancellationToken.None);
        Assert.Equal((VmState.Building, TaskState.Deleting), (deleting.VmState, deleting.TaskState));
        await harness.WaitForAsync(second.Uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        await harness.WaitForAsync(first.Uuid, VmState.Active, TaskState.None, PowerState.Running, seconds: 120);

        var log = await harness.Store.ReadEventsAsync(0, 1000);
        Assert.DoesNotContain(log, e => e.Uuid == second.Uuid && e.NewTaskState is TaskState.Networking or TaskState.Spawning);
        Assert.False(Directory.Exists(harness.Driver().InstanceDirectory(second.Uuid)));

        // A third, deleted in BLOCK_DEVICE_MAPPING while its image is being fetched: the fetch is
        // cancelled, and no domain and no files are left.
        var third = TinySpec(Guid.NewGuid());
        var fetching = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await harness.Engine.SpawnAsync(third, async ct =>
        {
            fetching.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return host.Guest.Disk;
        }, CancellationToken.None);
        await fetching.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(TaskState.BlockDeviceMapping, harness.Engine.Find(third.Uuid)!.TaskState);
        await harness.Engine.SubmitAsync(third.Uuid, InstanceCommand.Delete, CancellationToken.None);
        await harness.WaitForAsync(third.Uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        using var connection = LibvirtConnection.Open(QemuHost.Uri);
        Assert.Null(connection.TryLookupByUuid(third.Uuid));
        Assert.False(Directory.Exists(harness.Driver().InstanceDirectory(third.Uuid)));

        await harness.Engine.SubmitAsync(first.Uuid, InstanceCommand.Delete, CancellationToken.None);
        await harness.WaitForAsync(first.Uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
    }

    [SkippableFact]
    public async Task Rescue_boots_a_rescue_disk_with_the_root_second_and_resize_grows_then_reverts_or_confirms()
    {
        host.SkipIfUnavailable();
        await using var harness = await EngineHarness.StartAsync(QemuHost.Uri);
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var spec = TinySpec(Guid.NewGuid());
        var uuid = spec.Uuid;
        var root = harness.Driver().RootDiskPath(uuid);
        var console = harness.Host.ConsoleLogPath(uuid);
        await harness.Engine.SpawnAsync(spec, _ => Task.FromResult(host.Guest.Disk), CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running, seconds: 120);
        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot);

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Rescue, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Rescued, TaskState.None, PowerState.Running);
        using (var domain = libvirt.LookupByUuid(uuid))
        {
            var xml = XDocument.Parse(domain.GetXmlDesc());
            var disks = xml.Descendants("disk").Where(d => (string?)d.Attribute("device") == "disk").Select(d => (string?)d.Element("source")?.Attribute("file")).ToList();
            Assert.Equal([Path.Combine(harness.Driver().InstanceDirectory(uuid), "disk.rescue"), root], disks);
        }

        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot, occurrence: 2);
        Assert.NotNull(harness.Engine.Find(uuid)!.PreRescueXml);

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Unrescue, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);
        using (var domain = libvirt.LookupByUuid(uuid))
        {
            var disks = XDocument.Parse(domain.GetXmlDesc()).Descendants("disk").Select(d => (string?)d.Element("source")?.Attribute("file")).ToList();
            Assert.Equal([root], disks);
        }

        Assert.False(File.Exists(Path.Combine(harness.Driver().InstanceDirectory(uuid), "disk.rescue")));
        Assert.Null(harness.Engine.Find(uuid)!.PreRescueXml);

        // Each resize powers the guest off with ACPI: let it boot far enough to hear the button.
        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot, occurrence: 3);

        // Resize to 2 vCPUs, 512 MiB and a 2 GiB root, then revert: the old flavor and disk come back.
        var bigger = new Flavor("m1.small", 2, 512, RootGiB: 2);
        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Resize, bigger, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Resized, TaskState.None, PowerState.Running, seconds: 120);
        await AssertGuestSizeAsync(libvirt, uuid, root, vcpus: 2, memoryMiB: 512, diskGiB: 2);
        Assert.Equal("m1.small", harness.Engine.Find(uuid)!.Spec.Flavor.Name);
        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot, occurrence: 4);

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.RevertResize, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running, seconds: 120);
        await AssertGuestSizeAsync(libvirt, uuid, root, vcpus: 1, memoryMiB: 256, diskGiB: 1);
        Assert.Equal("m1.tiny", harness.Engine.Find(uuid)!.Spec.Flavor.Name);

        // A root disk never shrinks: refused before anything changes.
        await Assert.ThrowsAsync<InvalidInstanceSpecException>(() => harness.Engine.SubmitAsync(uuid, InstanceCommand.Resize, new Flavor("m1.nano", 1, 128, RootGiB: 0), CancellationToken.None));

        await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot, occurrence: 5);
        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Resize, bigger, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Resized, TaskState.None, PowerState.Running, seconds: 120);
        await harness.Engine.SubmitAsync(uuid, InstanceCommand.ConfirmResize, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);
        await AssertGuestSizeAsync(libvirt, uuid, root, vcpus: 2, memoryMiB: 512, diskGiB: 2);
        Assert.False(File.Exists(Path.Combine(harness.Driver().InstanceDirectory(uuid), "disk.pre-resize")));
        Assert.Null(harness.Engine.Find(uuid)!.PreResize);

        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Delete, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
    }

    private static async Task AssertGuestSizeAsync(LibvirtConnection libvirt, Guid uuid, string root, int vcpus, int memoryMiB, int diskGiB)
    {
        using var domain = libvirt.LookupByUuid(uuid);
        var info = domain.GetInfo();
        Assert.Equal(vcpus, info.VirtualCpus);
        Assert.Equal((ulong)memoryMiB * 1024, info.MaxMemoryKiB);
        var image = await ComputeAgent.Instances.Images.QemuImg.InfoJsonAsync(root, CancellationToken.None);
        Assert.Contains($"\"virtual-size\": {(long)diskGiB * 1024 * 1024 * 1024}", image, StringComparison.Ordinal);
    }

    /// <summary>The smallest spawn: 1 vCPU, 256 MiB, a 1 GiB root disk.</summary>
    internal static InstanceSpec TinySpec(Guid uuid) => new()
    {
        Uuid = uuid,
        Name = "engine-test",
        Flavor = new Flavor("m1.tiny", 1, 256, RootGiB: 1),
        Image = new ImageMeta("a1b2c3d4-0000-4000-8000-000000000002"),
        Owner = new InstanceOwner("6f3e1a2b3c4d4e5f8a9b0c1d2e3f4a5b", "0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5"),
    };
}

internal static class EngineHarnessExtensions
{
    public static InstanceDriver Driver(this EngineHarness harness) => harness.Engine.Driver;
}
