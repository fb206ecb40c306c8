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
/// happened, and leaves no domain, no overlay and no instance folder behind.
/// </summary>
[Collection(DomainXmlQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class EngineSpawnFailureTests(QemuHost host) : IAsyncLifetime
{
    private readonly TestImages images = new();
    private FakeGlance glance = null!;
    private EngineHarness harness = null!;
    private ImageCache cache = null!;

    public async Task InitializeAsync()
    {
        if (host.SkipReason is not null)
        {
            return;
        }

        glance = await FakeGlance.StartAsync();
        harness = await EngineHarness.StartAsync(QemuHost.Uri);
        cache = new ImageCache(new GlanceClient(new HttpClient(), glance.Endpoint), new ImageCacheOptions { Directory = images.CacheDirectory }, NullLogger<ImageCache>.Instance);
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
        var fault = await SpawnExpectingFailureAsync(image.Id, Samples.Image());
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
        Assert.Contains("backing", fault, StringComparison.OrdinalIgnoreCase);
    }

    [SkippableFact]
    public async Task A_domain_libvirt_refuses_leaves_nothing_behind()
    {
        host.SkipIfUnavailable();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });

        // A machine type this QEMU does not have: the builder cannot know, libvirt refuses it.
        var fault = await SpawnExpectingFailureAsync(image.Id, Samples.Image(new Dictionary<string, string> { ["hw_machine_type"] = "pc-i440fx-99.9" }));
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
            var fault = await SpawnExpectingFailureAsync(image.Id, Samples.Image());
            Assert.Contains("No space left", fault, StringComparison.Ordinal);
        }
        finally
        {
            await ProcessRunner.RunAsync("umount", [harness.Host.InstancesDirectory], TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Spawns from <paramref name="imageId"/> and returns the fault message of the ERROR it must end in.</summary>
    private async Task<string> SpawnExpectingFailureAsync(string imageId, ImageMeta meta)
    {
        var spec = new InstanceSpec
        {
            Uuid = Guid.NewGuid(),
            Name = "doomed",
            Flavor = new Flavor("m1.tiny", 1, 256, RootGiB: 1),
            Image = meta with { Id = imageId },
            Owner = new InstanceOwner("p1", "u1"),
        };
        await harness.Engine.SpawnAsync(spec, async ct => (await cache.GetAsync(imageId, FakeGlance.Token, ct)).Path, CancellationToken.None);
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
        return fault.Message;
    }
}
