using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Grpc.Core;
using Grpc.Reflection.V1Alpha;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>The agent process against libvirt's test:///default (inside the agent's own process): no QEMU needed.</summary>
public sealed class AgentStartupTests
{
    private static readonly Dictionary<string, string> TestDriver = new() { ["LibvirtUri"] = "test:///default" };

    [Fact]
    public async Task Invalid_settings_stop_the_start_with_every_bad_key_named()
    {
        var (exitCode, output) = await AgentProcess.RunToExitAsync(new Dictionary<string, string>
        {
            ["VirtType"] = "xen",
            ["MaxConcurrentBuilds"] = "0",
            ["ImageServiceUrl"] = "ftp://glance",
            ["StateDirectory"] = "relative/path",
            ["CpuMode"] = "custom",
        });

        Assert.Equal(2, exitCode);
        Assert.Contains("Agent:VirtType 'xen' must be kvm, qemu or auto", output, StringComparison.Ordinal);
        Assert.Contains("Agent:MaxConcurrentBuilds 0 must be between 1 and 1000", output, StringComparison.Ordinal);
        Assert.Contains("Agent:ImageServiceUrl 'ftp://glance'", output, StringComparison.Ordinal);
        Assert.Contains("Agent:StateDirectory 'relative/path' must be an absolute path", output, StringComparison.Ordinal);
        Assert.Contains("Agent:CpuMode custom needs Agent:CpuModels", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_started_agent_serves_health_reflection_and_the_api_over_its_unix_socket()
    {
        await using var agent = await AgentProcess.StartAsync(TestDriver);
        // The mode is set just after the listener starts: give it a moment.
        const UnixFileMode ownerAndGroup = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
        for (var i = 0; i < 50 && File.GetUnixFileMode(agent.SocketPath) != ownerAndGroup; i++)
        {
            await Task.Delay(20);
        }

        Assert.Equal(ownerAndGroup, File.GetUnixFileMode(agent.SocketPath));

        // Reflection: what grpcurl list / describe use.
        var reflection = new ServerReflection.ServerReflectionClient(agent.Channel);
        using (var call = reflection.ServerReflectionInfo())
        {
            await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = string.Empty });
            await call.RequestStream.CompleteAsync();
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
            Assert.Contains("computeagent.v1.ComputeAgent", services);
            Assert.Contains("grpc.health.v1.Health", services);
        }

        // The test driver's fixed node: 16 CPUs in 2 NUMA cells.
        var host = await agent.Client.GetHostAsync(new GetHostRequest());
        Assert.Equal(16, host.Cpus);
        Assert.Equal(2, host.NumaNodes);
        Assert.Equal(0, host.InstanceCount);
        Assert.Empty((await agent.Client.ListInstancesAsync(new ListInstancesRequest())).Instances);
    }

    [Fact]
    public async Task Bad_requests_answer_with_a_status_that_says_what_to_do()
    {
        await using var agent = await AgentProcess.StartAsync(TestDriver);

        var badUuid = await Assert.ThrowsAsync<RpcException>(() => agent.Client.PauseAsync(new InstanceRequest { InstanceUuid = "not-a-uuid" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badUuid.StatusCode);
        Assert.Contains("instance_uuid", badUuid.Status.Detail, StringComparison.Ordinal);

        var missing = Guid.NewGuid().ToString();
        var notFound = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = missing }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        Assert.Contains(missing, notFound.Status.Detail, StringComparison.Ordinal);

        var noImageService = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SpawnAsync(new SpawnRequest
        {
            InstanceUuid = Guid.NewGuid().ToString(),
            Name = "vm",
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
            ImageId = "a1b2c3d4-0000-4000-8000-000000000002",
        }).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, noImageService.StatusCode);
        Assert.Contains("Agent:ImageServiceUrl", noImageService.Status.Detail, StringComparison.Ordinal);

        var noFlavor = await Assert.ThrowsAsync<RpcException>(() => agent.Client.SpawnAsync(new SpawnRequest { InstanceUuid = Guid.NewGuid().ToString(), ImageId = "x" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noFlavor.StatusCode);
        Assert.Contains("flavor", noFlavor.Status.Detail, StringComparison.Ordinal);
        Assert.Empty((await agent.Client.ListInstancesAsync(new ListInstancesRequest())).Instances);
    }
}
