using System.Net;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Instances.Tests.Images;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// A snapshot whose upload the image service refuses, on test:///default (a stopped guest's disk
/// is flattened by the real qemu-img): the queued image the agent created is deleted and the
/// flattened copy removed.
/// </summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class EngineSnapshotUploadTests : IAsyncLifetime
{
    private readonly TestImages images = new();
    private FakeGlance glance = null!;
    private EngineHarness harness = null!;
    private GlanceClient client = null!;
    private ImageCache cache = null!;

    public async Task InitializeAsync()
    {
        glance = await FakeGlance.StartAsync();
        harness = await EngineHarness.StartAsync(DomainXmlLibvirtCollection.Uri);
        client = new GlanceClient(new HttpClient(), glance.Endpoint);
        cache = new ImageCache(client, new ImageCacheOptions { Directory = Path.Combine(harness.Scratch, "_base") }, NullLogger<ImageCache>.Instance);
    }

    public async Task DisposeAsync()
    {
        await harness.DisposeAsync();
        await glance.DisposeAsync();
        images.Dispose();
    }

    [Fact]
    public async Task A_snapshot_whose_upload_glance_answers_500_deletes_its_queued_image_and_leaves_no_temp_file()
    {
        var spec = await StoppedInstanceAsync("snapshot-upload-fails");
        var directory = harness.Driver().InstanceDirectory(spec.Uuid);

        var faultsBefore = (await harness.Store.ListFaultsAsync(spec.Uuid)).Count;
        glance.UploadStatus = HttpStatusCode.InternalServerError;
        var target = await GlanceUploadTarget.CreateAsync(client, harness.Engine.Find(spec.Uuid)!.Spec, "snap", new Dictionary<string, string>(), null, FakeGlance.Token, CancellationToken.None);
        Assert.True(glance.Has(target.ImageId));
        await harness.Engine.SubmitAsync(spec.Uuid, InstanceCommand.Snapshot, new CommandInput { Upload = target }, CancellationToken.None);

        // The task may fail before a wait for its event begins: wait for its fault instead (a hang bound).
        for (var i = 0; i < 600 && (await harness.Store.ListFaultsAsync(spec.Uuid)).Count == faultsBefore; i++)
        {
            await Task.Delay(100);
        }

        await glance.UploadStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await harness.WaitForAsync(spec.Uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown);
        var fault = (await harness.Store.ListFaultsAsync(spec.Uuid))[^1];
        Assert.Equal(
            $"snapshot failed: image {target.ImageId}: the image service answered 500 Internal Server Error at {glance.Endpoint}v2/images/{target.ImageId}/file; it is down or overloaded, retry later; the guest is unchanged, nothing else was done",
            fault.Message);
        Assert.Equal("ImageServiceException", fault.Code);
        Assert.False(glance.Has(target.ImageId), "the snapshot's queued image was deleted from the image service");

        // The flattened copy (snapshot.qcow2, being uploaded when Glance failed) is gone: the root disk alone is left.
        Assert.Equal(["disk"], Files(directory));
        Assert.Empty(await harness.Store.ListJournalAsync());
    }

    [Fact]
    public async Task While_it_uploads_a_snapshot_journals_the_image_it_created_and_forgets_it_once_the_data_is_in()
    {
        var spec = await StoppedInstanceAsync("snapshot-journal");

        glance.UploadGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var target = await GlanceUploadTarget.CreateAsync(client, harness.Engine.Find(spec.Uuid)!.Spec, "snap", new Dictionary<string, string>(), null, FakeGlance.Token, CancellationToken.None);
        await harness.Engine.SubmitAsync(spec.Uuid, InstanceCommand.Snapshot, new CommandInput { Upload = target }, CancellationToken.None);
        await glance.UploadStarted.Task.WaitAsync(TimeSpan.FromMinutes(2));

        // Held inside the upload: a kill now would leave this entry, and recovery would delete the image.
        var entry = Assert.Single(await harness.Store.ListJournalAsync());
        Assert.Equal(InstanceCommand.Snapshot, entry.Command);
        Assert.Equal(target.ImageId, entry.Created["snapshot_queued_image"]);

        glance.UploadGate.SetResult();
        await harness.WaitForAsync(spec.Uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown);
        Assert.Empty(await harness.Store.ListJournalAsync());
        Assert.True(glance.Has(target.ImageId), "the snapshot's image is kept");
    }

    [Fact]
    public void An_image_the_caller_created_is_never_the_agents_to_delete()
    {
        var spec = new InstanceSpec
        {
            Uuid = Guid.NewGuid(),
            Name = "caller-image",
            Flavor = new Flavor("m1.tiny", 1, 256, RootGiB: 1),
            Image = Samples.Image(),
            Owner = new InstanceOwner("p1", "u1"),
        };
        var existing = GlanceUploadTarget.Existing(client, spec, "5d4e3c2b-0000-4000-8000-00000000000a", FakeGlance.Token);
        Assert.Equal("5d4e3c2b-0000-4000-8000-00000000000a", existing.ImageId);
        Assert.Null(existing.CreatedImageId);
    }

    /// <summary>A guest spawned from a real qcow2 through the cache, then stopped (its overlay is read directly).</summary>
    private async Task<InstanceSpec> StoppedInstanceAsync(string name)
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = await images.Qcow2Async() });
        var spec = new InstanceSpec
        {
            Uuid = Guid.NewGuid(),
            Name = name,
            Flavor = new Flavor("m1.tiny", 1, 256, RootGiB: 1),
            Image = Samples.Image() with { Id = image.Id },
            Owner = new InstanceOwner("p1", "u1"),
        };
        await harness.Engine.SpawnAsync(spec, async ct => (await cache.GetAsync(image.Id, FakeGlance.Token, ct)).Path, CancellationToken.None);
        await harness.WaitForAsync(spec.Uuid, VmState.Active, TaskState.None, PowerState.Running);
        await harness.Engine.SubmitAsync(spec.Uuid, InstanceCommand.Stop, CancellationToken.None);
        await harness.WaitForAsync(spec.Uuid, VmState.Stopped, TaskState.None, PowerState.Shutdown);
        return spec;
    }

    private static string[] Files(string directory) =>
        [.. Directory.EnumerateFileSystemEntries(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal)!];
}
