using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Grpc.Core;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>A guest spawned from a real HTTP image service and driven over gRPC, as a controller would.</summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class AgentLifecycleTests(QemuHost host)
{
    [SkippableFact]
    public async Task Spawn_streams_the_seeds_sequence_commands_are_refused_or_run_and_delete_leaves_nothing()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-lifecycle");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
        }, scratch);
        var uuid = Guid.NewGuid().ToString();
        using var watch = agent.Client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid });
        var spawn = new SpawnRequest
        {
            RequestId = Guid.NewGuid().ToString(),
            InstanceUuid = uuid,
            Name = "web-1",
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
            ImageId = images.ImageId,
            ProjectId = "p1",
            UserId = "u1",
        };
        var accepted = await agent.Client.SpawnAsync(spawn);
        Assert.Equal((VmState.Building, TaskState.Scheduling), (accepted.Instance.VmState, accepted.Instance.TaskState));

        // The same request id again is the first answer; the same UUID with a new id, the same instance.
        Assert.Equal(accepted, await agent.Client.SpawnAsync(spawn));
        spawn.RequestId = Guid.NewGuid().ToString();
        Assert.Equal(uuid, (await agent.Client.SpawnAsync(spawn)).Instance.Uuid);

        var sequence = new List<(VmState, TaskState, PowerState)>();
        long last = 0;
        while (sequence.Count == 0 || sequence[^1] != (VmState.Active, TaskState.None, PowerState.Running))
        {
            Assert.True(await watch.ResponseStream.MoveNext(new CancellationTokenSource(TimeSpan.FromSeconds(120)).Token));
            var e = watch.ResponseStream.Current;
            Assert.True(e.Sequence > last, "sequence numbers only grow");
            last = e.Sequence;
            sequence.Add((e.VmState, e.TaskState, e.PowerState));
        }

        Assert.Equal(
            [
                (VmState.Building, TaskState.Scheduling, PowerState.Nostate),
                (VmState.Building, TaskState.Networking, PowerState.Nostate),
                (VmState.Building, TaskState.BlockDeviceMapping, PowerState.Nostate),
                (VmState.Building, TaskState.Spawning, PowerState.Nostate),
                (VmState.Active, TaskState.None, PowerState.Running),
            ],
            sequence);

        var request = new InstanceRequest { InstanceUuid = uuid };
        var refused = await Assert.ThrowsAsync<RpcException>(() => agent.Client.ResumeAsync(request).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("ACTIVE", refused.Status.Detail, StringComparison.Ordinal);

        await agent.Client.PauseAsync(request);
        Assert.Equal(VmState.Paused, (await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow.AddSeconds(60))).VmState);
        await agent.Client.UnpauseAsync(request);
        var active = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.Equal((VmState.Active, PowerState.Running), (active.VmState, active.PowerState));

        // The console tail is the guest's own serial output.
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!(await agent.Client.GetConsoleOutputAsync(new GetConsoleOutputRequest { InstanceUuid = uuid })).Output.Contains(host.Guest.ReadyLine, StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the guest's ready line reached the console log");
            await Task.Delay(200);
        }

        var listed = await agent.Client.ListInstancesAsync(new ListInstancesRequest { ProjectId = "p1" });
        Assert.Equal(uuid, Assert.Single(listed.Instances).Uuid);
        Assert.Equal(1, (await agent.Client.GetHostAsync(new GetHostRequest())).InstanceCount);

        await agent.Client.DeleteAsync(request);
        var deleted = await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Deleted }, deadline: DateTime.UtcNow.AddSeconds(60));
        Assert.Equal(PowerState.Nostate, deleted.PowerState);
        using var connection = LibvirtConnection.Open(QemuHost.Uri);
        Assert.Null(connection.TryLookupByUuid(Guid.Parse(uuid)));
        Assert.False(Directory.Exists(Path.Combine(scratch, "instances", uuid)));
        Assert.Empty((await agent.Client.ListInstancesAsync(new ListInstancesRequest())).Instances);
    }

    [SkippableFact]
    public async Task A_retried_request_id_gets_the_first_answer_even_after_an_agent_restart()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-ledger");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        var settings = new Dictionary<string, string> { ["LibvirtUri"] = QemuHost.Uri, ["ImageServiceUrl"] = images.Url };
        var uuid = Guid.NewGuid().ToString();
        try
        {
            var agent = await AgentProcess.StartAsync(settings, scratch);
            var spawn = new SpawnRequest
            {
                RequestId = Guid.NewGuid().ToString(),
                InstanceUuid = uuid,
                Name = "ledger",
                Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
                ImageId = images.ImageId,
                ProjectId = "p1",
                UserId = "u1",
            };
            var first = await agent.Client.SpawnAsync(spawn);
            Assert.Equal(VmState.Active, (await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow.AddSeconds(120))).VmState);
            var pause = new InstanceRequest { RequestId = Guid.NewGuid().ToString(), InstanceUuid = uuid };
            var paused = await agent.Client.PauseAsync(pause);
            Assert.Equal(VmState.Paused, (await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow.AddSeconds(60))).VmState);

            await agent.KillAsync();
            await agent.DisposeAsync();
            agent = await AgentProcess.StartAsync(settings, scratch);
            await using (agent)
            {
                // The instance is ACTIVE-and-paused now; the retries still get their first answers
                // (BUILDING / SCHEDULING, ACTIVE / PAUSING), and the pause is not tried again (a
                // second pause of a PAUSED instance would be refused).
                Assert.Equal(first, await agent.Client.SpawnAsync(spawn));
                Assert.Equal(paused, await agent.Client.PauseAsync(pause));
                Assert.Equal((VmState.Paused, TaskState.None), ((await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid })).VmState, (await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid })).TaskState));

                // The same id for another kind of call is a mistake the caller must hear about.
                var reused = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SnapshotAsync(new SnapshotRequest { RequestId = pause.RequestId, InstanceUuid = uuid, Name = "x" }).ResponseAsync);
                Assert.Equal(StatusCode.InvalidArgument, reused.StatusCode);
                Assert.Contains("request id", reused.Status.Detail, StringComparison.Ordinal);

                await agent.Client.DeleteAsync(new InstanceRequest { InstanceUuid = uuid });
                await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Deleted }, deadline: DateTime.UtcNow.AddSeconds(60));
            }
        }
        finally
        {
            DomainCleanup.Remove(QemuHost.Uri, Guid.Parse(uuid));
            Directory.Delete(scratch, recursive: true);
        }
    }
}
