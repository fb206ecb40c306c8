using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Instances.Tests.Images;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// Spawns that fail on the way (design.md §2): each ends in ERROR with a fault that says what
/// happened, and leaves no domain, no overlay and no instance folder behind. Also the image's
/// other ways to fail a task: a root disk smaller than the image, a snapshot cut short by delete.
/// </summary>
[Collection(DomainXmlQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class EngineSpawnFailureTests(QemuHost host) : IAsyncLifetime
{
    private readonly TestImages images = new();
    private FakeGlance glance = null!;
    private EngineHarness harness = null!;
    private ImageCache cache = null!;
    private GlanceClient client = null!;

    public async Task InitializeAsync()
    {
        if (host.SkipReason is not null)
        {
            return;
        }

        glance = await FakeGlance.StartAsync();
        harness = await EngineHarness.StartAsync(QemuHost.Uri);
        client = new GlanceClient(new HttpClient(), glance.Endpoint);
        // In the harness's scratch folder, which QEMU (another user) can reach, as it reaches _base.
        cache = new ImageCache(client, new ImageCacheOptions { Directory = Path.Combine(harness.Scratch, "_base") }, NullLogger<ImageCache>.Instance);
    }

    public async Task DisposeAsync()
    {
        if (host.SkipReason is null)
        {
            await harness.DisposeAsync();
            await glance.DisposeAsync();
        }

        Directory.Delete(images.Scratch, recursive: true);
    }

    [SkippableFact]
    public async Task An_image_corrupted_in_transit_fails_its_checksum()
    {
        host.SkipIfUnavailable();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async(), CorruptInTransit = true });
        var fault = (await SpawnExpectingFailureAsync(image.Id, Samples.Image())).Message;
        Assert.Contains("damaged in transit", fault, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task An_image_with_a_backing_file_is_refused_as_unsafe()
    {
        host.SkipIfUnavailable();
        var backing = Path.Combine(images.Scratch, "secret.qcow2");
        await TestImages.QemuImgAsync("create", "-q", "-f", "qcow2", backing, "16M");
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async("-b", backing, "-F", "qcow2") });
        var fault = await SpawnExpectingFailureAsync(image.Id, Samples.Image());

        // The image check's own refusal, before QEMU ever opens the image (not QEMU's "could not open backing file").
        Assert.Equal(nameof(ImageServiceException), fault.Code);
        Assert.Equal(
            $"spawn failed: image {image.Id}: refused as unsafe: it has a backing file ('{backing}'), which QEMU would open on this host; "
            + "flatten it (qemu-img convert -O qcow2) and upload it again; the domain and the instance's files were removed",
            fault.Message);
    }

    [SkippableFact]
    public async Task A_domain_libvirt_refuses_leaves_nothing_behind()
    {
        host.SkipIfUnavailable();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });

        // A machine type this QEMU does not have: the builder cannot know, libvirt refuses it.
        var fault = (await SpawnExpectingFailureAsync(image.Id, Samples.Image(new Dictionary<string, string> { ["hw_machine_type"] = "pc-i440fx-99.9" }))).Message;
        Assert.Contains("machine", fault, StringComparison.OrdinalIgnoreCase);
    }

    [SkippableFact]
    public async Task A_full_instance_disk_fails_the_spawn_cleanly()
    {
        host.SkipIfUnavailable();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });
        var mounted = await ProcessRunner.RunAsync("mount", ["-t", "tmpfs", "-o", "size=16k,mode=0755", "tmpfs", harness.Host.InstancesDirectory], TimeSpan.FromSeconds(10));
        Skip.If(mounted.ExitCode != 0, $"cannot mount a tiny tmpfs here ({mounted.StandardError.Trim()}): the disk-full path needs root and mount");
        try
        {
            var fault = (await SpawnExpectingFailureAsync(image.Id, Samples.Image())).Message;
            Assert.Contains("No space left", fault, StringComparison.Ordinal);
        }
        finally
        {
            await ProcessRunner.RunAsync("umount", [harness.Host.InstancesDirectory], TimeSpan.FromSeconds(10));
        }
    }

    [SkippableFact]
    public async Task An_image_larger_than_the_flavors_root_disk_fails_at_block_device_mapping_naming_both_sizes()
    {
        host.SkipIfUnavailable();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await TwoGiBQcow2Async() });
        var fault = (await SpawnExpectingFailureAsync(image.Id, Samples.Image())).Message;
        Assert.Contains("the root disk is 1073741824 bytes (1 GiB), the image's virtual size is 2147483648 bytes (2 GiB)", fault, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Rebuild_and_resize_refuse_a_root_disk_smaller_than_the_image_and_root_gib_0_keeps_the_images_size()
    {
        host.SkipIfUnavailable();
        var small = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });
        var big = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await TwoGiBQcow2Async() });

        // On a 1 GiB root disk, a rebuild from the 2 GiB image is refused before the guest is touched.
        var fits = Spec(small.Id, Samples.Image(), rootGiB: 1);
        await harness.Engine.SpawnAsync(fits, BaseImage(small.Id), CancellationToken.None);
        await harness.WaitForAsync(fits.Uuid, VmState.Active, TaskState.None, PowerState.Running);
        await harness.Engine.SubmitAsync(fits.Uuid, InstanceCommand.Rebuild, new CommandInput { Image = Samples.Image() with { Id = big.Id }, BaseImage = BaseImage(big.Id) }, CancellationToken.None);
        await harness.WaitForAsync(fits.Uuid, VmState.Active, TaskState.None, PowerState.Running);
        var rebuildFault = (await harness.Store.ListFaultsAsync(fits.Uuid))[^1];
        Assert.Equal(nameof(FlavorDiskSmallerThanImageException), rebuildFault.Code);
        Assert.Contains("the image's virtual size is 2147483648 bytes", rebuildFault.Message, StringComparison.Ordinal);
        Assert.Contains("the guest is unchanged", rebuildFault.Message, StringComparison.Ordinal);
        Assert.Equal(small.Id, harness.Engine.Find(fits.Uuid)!.Spec.Image.Id);
        Assert.Equal(cache.PathOf(small.Id), (await RootDiskAsync(fits.Uuid)).BackingFile);
        Assert.False(File.Exists(Path.Combine(harness.Driver().InstanceDirectory(fits.Uuid), "disk.rebuild")));

        // root_gib 0: the root disk is the image's own size, and resizing it to 1 GiB would shrink it.
        var zero = Spec(big.Id, Samples.Image(), rootGiB: 0);
        await harness.Engine.SpawnAsync(zero, BaseImage(big.Id), CancellationToken.None);
        await harness.WaitForAsync(zero.Uuid, VmState.Active, TaskState.None, PowerState.Running);
        Assert.Equal(2L << 30, (await RootDiskAsync(zero.Uuid)).VirtualSize);
        await harness.Engine.SubmitAsync(zero.Uuid, InstanceCommand.Resize, new Flavor("m1.tiny", 1, 256, RootGiB: 1), CancellationToken.None);
        await harness.WaitForAsync(zero.Uuid, VmState.Active, TaskState.None, PowerState.Running);
        var resizeFault = (await harness.Store.ListFaultsAsync(zero.Uuid))[^1];
        Assert.Equal(nameof(FlavorDiskSmallerThanImageException), resizeFault.Code);
        Assert.Contains("the guest is unchanged", resizeFault.Message, StringComparison.Ordinal);
        Assert.Equal(0, harness.Engine.Find(zero.Uuid)!.Spec.Flavor.RootGiB);
        Assert.Equal(2L << 30, (await RootDiskAsync(zero.Uuid)).VirtualSize);

        foreach (var uuid in new[] { fits.Uuid, zero.Uuid })
        {
            await harness.Engine.SubmitAsync(uuid, InstanceCommand.Delete, CancellationToken.None);
            await harness.WaitForAsync(uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        }
    }

    [SkippableFact]
    public async Task A_delete_that_preempts_a_snapshot_deletes_the_snapshots_image_from_the_image_service()
    {
        host.SkipIfUnavailable();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });
        var spec = Spec(image.Id, Samples.Image(), rootGiB: 1);
        await harness.Engine.SpawnAsync(spec, BaseImage(image.Id), CancellationToken.None);
        await harness.WaitForAsync(spec.Uuid, VmState.Active, TaskState.None, PowerState.Running);

        // The upload is held in the image service; the delete comes while the snapshot waits on it.
        glance.UploadGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var target = await GlanceUploadTarget.CreateAsync(client, harness.Engine.Find(spec.Uuid)!.Spec, "snap", new Dictionary<string, string>(), null, FakeGlance.Token, CancellationToken.None);
        Assert.True(glance.Has(target.ImageId));
        await harness.Engine.SubmitAsync(spec.Uuid, InstanceCommand.Snapshot, new CommandInput { Upload = target }, CancellationToken.None);
        await glance.UploadStarted.Task.WaitAsync(TimeSpan.FromSeconds(120));
        Assert.Equal(TaskState.ImageUploading, harness.Engine.Find(spec.Uuid)!.TaskState);

        await harness.Engine.SubmitAsync(spec.Uuid, InstanceCommand.Delete, CancellationToken.None);
        await harness.WaitForAsync(spec.Uuid, VmState.Deleted, TaskState.None, PowerState.NoState);
        Assert.False(glance.Has(target.ImageId), "the snapshot's queued image was deleted from the image service");
    }

    /// <summary>A qcow2 whose guest sees 2 GiB (a few hundred KiB of file).</summary>
    private async Task<byte[]> TwoGiBQcow2Async()
    {
        var path = Path.Combine(images.Scratch, $"{Guid.NewGuid():N}.qcow2");
        await TestImages.QemuImgAsync("create", "-q", "-f", "qcow2", path, "2G");
        return await File.ReadAllBytesAsync(path);
    }

    private Func<CancellationToken, Task<string>> BaseImage(string imageId) =>
        async ct => (await cache.GetAsync(imageId, FakeGlance.Token, ct)).Path;

    private async Task<QemuImageInfo> RootDiskAsync(Guid uuid) =>
        QemuImageInfo.Parse(await QemuImg.InfoJsonAsync(harness.Driver().RootDiskPath(uuid), CancellationToken.None));

    private static InstanceSpec Spec(string imageId, ImageMeta meta, int rootGiB) => new()
    {
        Uuid = Guid.NewGuid(),
        Name = "doomed",
        Flavor = new Flavor("m1.tiny", 1, 256, RootGiB: rootGiB),
        Image = meta with { Id = imageId },
        Owner = new InstanceOwner("p1", "u1"),
    };

    /// <summary>Spawns from <paramref name="imageId"/> and returns the fault message of the ERROR it must end in.</summary>
    private async Task<Instances.Store.FaultRecord> SpawnExpectingFailureAsync(string imageId, ImageMeta meta)
    {
        var spec = Spec(imageId, meta, rootGiB: 1);
        await harness.Engine.SpawnAsync(spec, BaseImage(imageId), CancellationToken.None);
        var failed = await Assert.ThrowsAsync<InvalidOperationException>(() => harness.WaitForAsync(spec.Uuid, VmState.Active, TaskState.None));
        Assert.Contains("spawn failed", failed.Message, StringComparison.Ordinal);

        var record = harness.Engine.Find(spec.Uuid)!;
        Assert.Equal((VmState.Error, TaskState.None, PowerState.NoState), (record.VmState, record.TaskState, record.PowerState));
        using (var libvirt = LibvirtConnection.Open(QemuHost.Uri))
        {
            Assert.Null(libvirt.TryLookupByUuid(spec.Uuid));
        }

        Assert.False(Directory.Exists(harness.Driver().InstanceDirectory(spec.Uuid)), "the instance folder was removed");
        Assert.Empty(await harness.Store.ListJournalAsync());
        var fault = Assert.Single(await harness.Store.ListFaultsAsync(spec.Uuid));
        Assert.Contains("were removed", fault.Message, StringComparison.Ordinal);
        return fault;
    }
}
