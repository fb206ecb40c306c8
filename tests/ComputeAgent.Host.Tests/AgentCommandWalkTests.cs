using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Grpc.Core;
using Xunit;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// Every implemented command driven through gRPC on a real guest, each asserted by the exact
/// vm_state / task_state sequence WatchInstances streams and by libvirt's own view.
/// </summary>
[Collection(AgentQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class AgentCommandWalkTests(QemuHost host)
{
    [SkippableFact]
    public async Task Each_command_streams_its_task_states_and_lands_where_the_state_table_says()
    {
        host.SkipIfUnavailable();
        var scratch = RepositoryPaths.CreateScratch("agent-walk");
        await using var images = await ImageService.StartAsync(host.Guest, scratch);
        await using var agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["LibvirtUri"] = QemuHost.Uri,
            ["ImageServiceUrl"] = images.Url,
            ["GracefulStopTimeoutSeconds"] = "30",
        }, scratch);
        using var libvirt = LibvirtConnection.Open(QemuHost.Uri);
        var uuid = Guid.NewGuid().ToString();
        var request = new InstanceRequest { InstanceUuid = uuid };
        using var walk = new InstanceWalk(agent, libvirt, Guid.Parse(uuid));

        await walk.SpawnAsync(images.ImageId);
        await walk.BootedAsync(host.Guest.ReadyLine);

        await walk.ExpectAsync(async () => (await agent.Client.PauseAsync(request)).Instance, [(VmState.Active, TaskState.Pausing), (VmState.Paused, TaskState.None)], DomainState.Paused);
        await walk.ExpectAsync(async () => (await agent.Client.UnpauseAsync(request)).Instance, [(VmState.Paused, TaskState.Unpausing), (VmState.Active, TaskState.None)], DomainState.Running);
        await walk.ExpectAsync(async () => (await agent.Client.SuspendAsync(request)).Instance, [(VmState.Active, TaskState.Suspending), (VmState.Suspended, TaskState.None)], DomainState.Shutoff);
        using (var domain = libvirt.LookupByUuid(Guid.Parse(uuid)))
        {
            Assert.True(domain.HasManagedSaveImage());
        }

        await walk.ExpectAsync(async () => (await agent.Client.ResumeAsync(request)).Instance, [(VmState.Suspended, TaskState.Resuming), (VmState.Active, TaskState.None)], DomainState.Running);
        await walk.ExpectAsync(async () => (await agent.Client.RescueAsync(new RescueRequest { InstanceUuid = uuid })).Instance, [(VmState.Active, TaskState.Rescuing), (VmState.Rescued, TaskState.None)], DomainState.Running);
        await walk.BootedAsync(host.Guest.ReadyLine);
        await walk.ExpectAsync(async () => (await agent.Client.UnrescueAsync(request)).Instance, [(VmState.Rescued, TaskState.Unrescuing), (VmState.Active, TaskState.None)], DomainState.Running);
        await walk.BootedAsync(host.Guest.ReadyLine);
        await walk.ExpectAsync(
            async () => (await agent.Client.ResizeAsync(new ResizeRequest { InstanceUuid = uuid, Flavor = new Flavor { Name = "m1.small", Vcpus = 2, RamMib = 512, RootGib = 2 } })).Instance,
            [(VmState.Active, TaskState.ResizePrep), (VmState.Active, TaskState.ResizeMigrating), (VmState.Active, TaskState.ResizeMigrated), (VmState.Active, TaskState.ResizeFinish), (VmState.Resized, TaskState.None)],
            DomainState.Running);
        using (var domain = libvirt.LookupByUuid(Guid.Parse(uuid)))
        {
            Assert.Equal(2, domain.GetInfo().VirtualCpus);
        }

        await walk.BootedAsync(host.Guest.ReadyLine);
        await walk.ExpectAsync(async () => (await agent.Client.ConfirmResizeAsync(request)).Instance, [(VmState.Resized, TaskState.ResizeConfirming), (VmState.Active, TaskState.None)], DomainState.Running);
        Assert.Equal("m1.small", (await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid })).Flavor.Name);
        await walk.ExpectAsync(async () => (await agent.Client.StopAsync(new StopRequest { InstanceUuid = uuid })).Instance, [(VmState.Active, TaskState.PoweringOff), (VmState.Stopped, TaskState.None)], DomainState.Shutoff);
        await walk.ExpectAsync(async () => (await agent.Client.StartAsync(request)).Instance, [(VmState.Stopped, TaskState.PoweringOn), (VmState.Active, TaskState.None)], DomainState.Running);
        await walk.BootedAsync(host.Guest.ReadyLine);
        await walk.ExpectAsync(async () => (await agent.Client.RebootAsync(new RebootRequest { InstanceUuid = uuid })).Instance, [(VmState.Active, TaskState.Rebooting), (VmState.Active, TaskState.None)], DomainState.Running);
        await walk.BootedAsync(host.Guest.ReadyLine);
        await walk.ExpectAsync(async () => (await agent.Client.RebootAsync(new RebootRequest { InstanceUuid = uuid, Hard = true })).Instance, [(VmState.Active, TaskState.RebootingHard), (VmState.Active, TaskState.None)], DomainState.Running);
        await walk.ExpectAsync(async () => (await agent.Client.DeleteAsync(request)).Instance, [(VmState.Active, TaskState.Deleting), (VmState.Deleted, TaskState.None)], null);
        Assert.False(Directory.Exists(Path.Combine(scratch, "instances", uuid)));
    }
}
