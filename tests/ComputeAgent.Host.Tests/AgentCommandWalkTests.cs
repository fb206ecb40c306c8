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
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

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
        using var watch = agent.Client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid });
        var console = Path.Combine(scratch, "instances", uuid, "console.log");
        var boots = 0;

        await Expect(
            () => agent.Client.SpawnAsync(new SpawnRequest
            {
                InstanceUuid = uuid,
                Name = "walk",
                Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
                ImageId = images.ImageId,
                ProjectId = "p1",
                UserId = "u1",
            }).ResponseAsync,
            [(VmState.Building, TaskState.Scheduling), (VmState.Building, TaskState.Networking), (VmState.Building, TaskState.BlockDeviceMapping), (VmState.Building, TaskState.Spawning), (VmState.Active, TaskState.None)],
            DomainState.Running);
        await Booted();

        await Expect(() => agent.Client.PauseAsync(request).ResponseAsync, [(VmState.Active, TaskState.Pausing), (VmState.Paused, TaskState.None)], DomainState.Paused);
        await Expect(() => agent.Client.UnpauseAsync(request).ResponseAsync, [(VmState.Paused, TaskState.Unpausing), (VmState.Active, TaskState.None)], DomainState.Running);
        await Expect(() => agent.Client.SuspendAsync(request).ResponseAsync, [(VmState.Active, TaskState.Suspending), (VmState.Suspended, TaskState.None)], DomainState.Shutoff);
        using (var domain = libvirt.LookupByUuid(Guid.Parse(uuid)))
        {
            Assert.True(domain.HasManagedSaveImage());
        }

        await Expect(() => agent.Client.ResumeAsync(request).ResponseAsync, [(VmState.Suspended, TaskState.Resuming), (VmState.Active, TaskState.None)], DomainState.Running);
        await Expect(() => agent.Client.RescueAsync(request).ResponseAsync, [(VmState.Active, TaskState.Rescuing), (VmState.Rescued, TaskState.None)], DomainState.Running);
        await Booted();
        await Expect(() => agent.Client.UnrescueAsync(request).ResponseAsync, [(VmState.Rescued, TaskState.Unrescuing), (VmState.Active, TaskState.None)], DomainState.Running);
        await Booted();
        await Expect(
            () => agent.Client.ResizeAsync(new ResizeRequest { InstanceUuid = uuid, Flavor = new Flavor { Name = "m1.small", Vcpus = 2, RamMib = 512, RootGib = 2 } }).ResponseAsync,
            [(VmState.Active, TaskState.ResizePrep), (VmState.Active, TaskState.ResizeMigrating), (VmState.Active, TaskState.ResizeMigrated), (VmState.Active, TaskState.ResizeFinish), (VmState.Resized, TaskState.None)],
            DomainState.Running);
        using (var domain = libvirt.LookupByUuid(Guid.Parse(uuid)))
        {
            Assert.Equal(2, domain.GetInfo().VirtualCpus);
        }

        await Booted();
        await Expect(() => agent.Client.ConfirmResizeAsync(request).ResponseAsync, [(VmState.Resized, TaskState.ResizeConfirming), (VmState.Active, TaskState.None)], DomainState.Running);
        Assert.Equal("m1.small", (await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid })).Flavor.Name);
        await Expect(() => agent.Client.StopAsync(request).ResponseAsync, [(VmState.Active, TaskState.PoweringOff), (VmState.Stopped, TaskState.None)], DomainState.Shutoff);
        await Expect(() => agent.Client.StartAsync(request).ResponseAsync, [(VmState.Stopped, TaskState.PoweringOn), (VmState.Active, TaskState.None)], DomainState.Running);
        await Booted();
        await Expect(() => agent.Client.RebootAsync(new RebootRequest { InstanceUuid = uuid }).ResponseAsync, [(VmState.Active, TaskState.Rebooting), (VmState.Active, TaskState.None)], DomainState.Running);
        await Booted();
        await Expect(() => agent.Client.RebootAsync(new RebootRequest { InstanceUuid = uuid, Hard = true }).ResponseAsync, [(VmState.Active, TaskState.RebootingHard), (VmState.Active, TaskState.None)], DomainState.Running);
        await Expect(() => agent.Client.DeleteAsync(request).ResponseAsync, [(VmState.Active, TaskState.Deleting), (VmState.Deleted, TaskState.None)], null);
        Assert.False(Directory.Exists(Path.Combine(scratch, "instances", uuid)));

        // Each command's events, in order, and libvirt's view once it is done (null: no domain).
        async Task Expect(Func<Task<InstanceReply>> call, (VmState, TaskState)[] expected, DomainState? libvirtState)
        {
            var reply = await call();
            Assert.Equal(expected[0], (reply.Instance.VmState, reply.Instance.TaskState));
            var seen = new List<(VmState, TaskState)>();
            using var cts = new CancellationTokenSource(Bound);
            while (seen.Count < expected.Length && await watch.ResponseStream.MoveNext(cts.Token))
            {
                var e = watch.ResponseStream.Current;
                if (e.Cause.StartsWith("libvirt event", StringComparison.Ordinal) || e.Cause == "reconcile")
                {
                    continue; // power_state catching up after the task: not a step of the command
                }

                seen.Add((e.VmState, e.TaskState));
            }

            Assert.Equal(expected, seen);
            using var domain = libvirt.TryLookupByUuid(Guid.Parse(uuid));
            Assert.Equal(libvirtState, domain?.GetState().State);
        }

        // Commands that power the guest off with ACPI need it booted far enough to hear the button.
        async Task Booted() => await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Bound, occurrence: ++boots);
    }
}
