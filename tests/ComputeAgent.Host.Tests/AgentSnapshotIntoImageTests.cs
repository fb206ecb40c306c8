using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// Snapshot into an image the caller already created (SnapshotRequest.image_id), as Nova's
/// driver needs: Nova creates the snapshot's image before it calls the driver. On test:///default
/// (a stopped guest's disk is copied; a running one cannot be, which gives the failure case).
/// </summary>
public sealed class AgentSnapshotIntoImageTests
{
    [Fact]
    public async Task A_snapshot_fills_the_callers_image_and_a_failed_one_leaves_that_image_to_the_caller()
    {
        var scratch = RepositoryPaths.CreateScratch("snapshot-into-image");
        var guest = await TestGuest.LoadOrBuildAsync();
        await using var images = await ImageService.StartAsync(guest, scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
        }, scratch);
        using var http = new HttpClient { BaseAddress = new Uri(images.Url) };
        var uuid = Guid.NewGuid().ToString();
        try
        {
            await agent.Client.SpawnAsync(new SpawnRequest
            {
                InstanceUuid = uuid,
                Name = "snapshot-into-image",
                ProjectId = "project-1",
                UserId = "user-1",
                ImageId = images.ImageId,
                Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 128, RootGib = 1 },
            });
            await WaitAsync(agent, uuid);

            // Running: test:///default cannot copy the disk, the task fails, and the caller's
            // queued image is still there for the caller to delete (the agent did not create it).
            var first = await CreateQueuedImageAsync(http, "nova-snapshot-1");
            var failed = await agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid, ImageId = first });
            Assert.Equal(first, failed.ImageId);
            var afterFailure = await WaitAsync(agent, uuid);
            Assert.Equal((VmState.Active, PowerState.Running), (afterFailure.VmState, afterFailure.PowerState));
            Assert.Contains("snapshot failed", afterFailure.Fault.Message, StringComparison.Ordinal);
            Assert.Equal("queued", await StatusAsync(http, first));

            // Stopped: the data goes into the caller's image and no other image is created.
            await agent.Client.StopAsync(new StopRequest { InstanceUuid = uuid });
            await WaitAsync(agent, uuid);
            var second = await CreateQueuedImageAsync(http, "nova-snapshot-2");
            var before = await ImageIdsAsync(http);
            var reply = await agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid, ImageId = second, Name = "ignored" });
            Assert.Equal(second, reply.ImageId);
            var done = await WaitAsync(agent, uuid);
            Assert.Equal(VmState.Stopped, done.VmState);
            Assert.Equal("active", await StatusAsync(http, second));
            using (var image = JsonDocument.Parse(await http.GetStringAsync(new Uri($"/v2/images/{second}", UriKind.Relative))))
            {
                Assert.Equal(("qcow2", "bare"), (image.RootElement.GetProperty("disk_format").GetString(), image.RootElement.GetProperty("container_format").GetString()));
            }

            Assert.Equal(before, await ImageIdsAsync(http));

            // An image id that could climb out of the URL is refused before anything is done.
            var refused = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => agent.Client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid, ImageId = "../x" }).ResponseAsync);
            Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, refused.StatusCode);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    private static async Task<Instance> WaitAsync(AgentProcess agent, string uuid) =>
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow.Add(InstanceWalk.Bound));

    private static async Task<string> CreateQueuedImageAsync(HttpClient http, string name)
    {
        // As nova-api creates a snapshot's record: no formats yet (Glance refuses data until they are set).
        using var response = await http.PostAsJsonAsync("/v2/images", new Dictionary<string, string?> { ["name"] = name, ["disk_format"] = null, ["container_format"] = null });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        using var image = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return image.RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<string?> StatusAsync(HttpClient http, string imageId)
    {
        using var image = JsonDocument.Parse(await http.GetStringAsync(new Uri($"/v2/images/{imageId}", UriKind.Relative)));
        return image.RootElement.GetProperty("status").GetString();
    }

    private static async Task<string[]> ImageIdsAsync(HttpClient http)
    {
        using var list = JsonDocument.Parse(await http.GetStringAsync(new Uri("/v2/images", UriKind.Relative)));
        return [.. list.RootElement.GetProperty("images").EnumerateArray().Select(i => i.GetProperty("id").GetString()!).Order(StringComparer.Ordinal)];
    }
}
