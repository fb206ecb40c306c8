using System.Xml.Linq;
using ComputeAgent.Api.V1;
using ComputeAgent.Testing;
using Grpc.Core;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>GetDomainXml through the agent process on libvirt's test:///default: a real spawn from the image service, no QEMU.</summary>
public sealed class AgentDomainXmlTests
{
    [Fact]
    public async Task Get_domain_xml_answers_libvirts_live_or_inactive_xml_and_says_when_there_is_no_domain()
    {
        var scratch = RepositoryPaths.CreateScratch("domain-xml");
        var guest = await TestGuest.LoadOrBuildAsync();
        await using var images = await ImageService.StartAsync(guest, scratch);
        var started = await StartWithRunningInstanceAsync(images, scratch);
        await using var agent = started.Agent;
        var uuid = started.Uuid;
        var request = new InstanceRequest { InstanceUuid = uuid };

        // Running: the live XML carries the domain's run-time id; the definition does not.
        var live = await agent.Client.GetDomainXmlAsync(new GetDomainXmlRequest { InstanceUuid = uuid });
        Assert.True(live.Active);
        var liveRoot = XDocument.Parse(live.Xml).Root!;
        Assert.Equal(uuid, liveRoot.Element("uuid")!.Value);
        Assert.NotNull(liveRoot.Attribute("id"));
        var inactive = await agent.Client.GetDomainXmlAsync(new GetDomainXmlRequest { InstanceUuid = uuid, Inactive = true });
        Assert.True(inactive.Active);
        var definition = XDocument.Parse(inactive.Xml).Root!;
        Assert.Null(definition.Attribute("id"));
        Assert.Equal("instance-" + uuid, definition.Element("name")!.Value);
        Assert.NotNull(definition.Element("features")!.Element("vmcoreinfo"));
        Assert.Equal("/dev/urandom", definition.Element("devices")!.Element("rng")!.Element("backend")!.Value);

        // Stopped: no live XML to show, so the definition, and active says so.
        await agent.Client.StopAsync(new StopRequest { InstanceUuid = uuid });
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Stopped }, deadline: DateTime.UtcNow.AddSeconds(60));
        var stopped = await agent.Client.GetDomainXmlAsync(new GetDomainXmlRequest { InstanceUuid = uuid });
        Assert.False(stopped.Active);
        Assert.Null(XDocument.Parse(stopped.Xml).Root!.Attribute("id"));

        // Unknown instance, bad uuid, and a deleted instance (known, but without a domain).
        var missing = Guid.NewGuid().ToString();
        var notFound = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetDomainXmlAsync(new GetDomainXmlRequest { InstanceUuid = missing }).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);
        Assert.Contains(missing, notFound.Status.Detail, StringComparison.Ordinal);
        var badUuid = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetDomainXmlAsync(new GetDomainXmlRequest { InstanceUuid = "instance-1" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, badUuid.StatusCode);

        await agent.Client.DeleteAsync(request);
        await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Deleted }, deadline: DateTime.UtcNow.AddSeconds(60));
        var deleted = await Assert.ThrowsAsync<RpcException>(() => agent.Client.GetDomainXmlAsync(new GetDomainXmlRequest { InstanceUuid = uuid }).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, deleted.StatusCode);
        Assert.Contains($"instance {uuid} has no libvirt domain: it is Deleted", deleted.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Attach_console_on_a_libvirt_driver_without_consoles_is_refused_naming_the_console_log_instead()
    {
        var scratch = RepositoryPaths.CreateScratch("console-test-driver");
        var guest = await TestGuest.LoadOrBuildAsync();
        await using var images = await ImageService.StartAsync(guest, scratch);
        var started = await StartWithRunningInstanceAsync(images, scratch);
        await using var agent = started.Agent;
        var uuid = started.Uuid;

        // libvirt's test driver has no virDomainOpenConsole: the guest runs, its console cannot open.
        using var call = agent.Client.AttachConsole();
        await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { InstanceUuid = uuid } });
        var refused = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("cannot open a guest's console", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("GetConsoleOutput", refused.Status.Detail, StringComparison.Ordinal);

        // Nothing was taken: the instance is unchanged and a second attempt is refused the same way, not as "a session is open".
        var instance = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid });
        Assert.Equal((VmState.Active, TaskState.None, PowerState.Running), (instance.VmState, instance.TaskState, instance.PowerState));
        using var again = agent.Client.AttachConsole();
        await again.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { InstanceUuid = uuid } });
        var refusedAgain = await Assert.ThrowsAsync<RpcException>(() => again.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Contains("cannot open a guest's console", refusedAgain.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>An agent on test:///default with one spawned, running instance.</summary>
    private static async Task<(AgentProcess Agent, string Uuid)> StartWithRunningInstanceAsync(ImageService images, string scratch)
    {
        var uuid = Guid.NewGuid().ToString();
        var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = "test:///default",
            ["ImageServiceUrl"] = images.Url,
        }, scratch);
        await agent.Client.SpawnAsync(new SpawnRequest
        {
            InstanceUuid = uuid,
            Name = "domain-xml",
            ProjectId = "project-1",
            UserId = "user-1",
            ImageId = images.ImageId,
            Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 128, RootGib = 1 },
        });
        Assert.Equal(VmState.Active, (await agent.Client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid, VmState = VmState.Active }, deadline: DateTime.UtcNow.AddSeconds(60))).VmState);
        return (agent, uuid);
    }
}
