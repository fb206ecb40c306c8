using ComputeAgent.Api.V1;
using ComputeAgent.Libvirt;
using Grpc.Core;
using Xunit;

namespace ComputeAgent.Testing;

/// <summary>
/// One instance driven through an agent's gRPC API, each command checked by the exact
/// vm_state / task_state sequence WatchInstances streams and by libvirt's view once it is done.
/// </summary>
public sealed class InstanceWalk(AgentProcess agent, LibvirtConnection libvirt, Guid uuid) : IDisposable
{
    /// <summary>How long one command, or one boot to the ready line, may take (a hang bound, not a speed check).</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(120);

    /// <summary>The flavor the walks spawn with.</summary>
    public static readonly Flavor Tiny = new() { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 };

    private readonly AsyncServerStreamingCall<InstanceEvent> watch = agent.Client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid.ToString() });
    private int boots;
    private int pendingSkips;

    private string Console => Path.Combine(agent.Scratch, "instances", uuid.ToString(), "console.log");

    /// <summary>Spawns the instance from <paramref name="imageId"/> and checks the seed's spawn sequence.</summary>
    public Task SpawnAsync(string imageId, string name = "walk") => ExpectAsync(
        async () => (await agent.Client.SpawnAsync(new SpawnRequest { InstanceUuid = uuid.ToString(), Name = name, Flavor = Tiny, ImageId = imageId, ProjectId = "p1", UserId = "u1" })).Instance,
        [(VmState.Building, TaskState.Scheduling), (VmState.Building, TaskState.Networking), (VmState.Building, TaskState.BlockDeviceMapping), (VmState.Building, TaskState.Spawning), (VmState.Active, TaskState.None)],
        DomainState.Running);

    /// <summary>
    /// Waits for the guest's next boot to print <paramref name="readyLine"/> (the console log keeps
    /// every boot). Commands that power the guest off with ACPI need it booted far enough to hear the button.
    /// </summary>
    public Task BootedAsync(string readyLine) => EventWaits.WaitForConsoleLineAsync(Console, readyLine, Bound, occurrence: ++boots);

    /// <summary>Skips the next <paramref name="count"/> task events (a command checked another way).</summary>
    public void Skip(int count) => pendingSkips += count;

    /// <summary>Runs <paramref name="call"/>; its answer, then its streamed events in order, then libvirt's state (null: no domain) must be as given.</summary>
    public async Task ExpectAsync(Func<Task<Instance>> call, (VmState, TaskState)[] expected, DomainState? libvirtState)
    {
        ArgumentNullException.ThrowIfNull(call);
        ArgumentNullException.ThrowIfNull(expected);
        var reply = await call();
        Assert.Equal(expected[0], (reply.VmState, reply.TaskState));
        var seen = new List<(VmState, TaskState)>();
        using var cts = new CancellationTokenSource(Bound);
        while (seen.Count < expected.Length && await watch.ResponseStream.MoveNext(cts.Token))
        {
            var e = watch.ResponseStream.Current;
            if (e.Cause.StartsWith("libvirt event", StringComparison.Ordinal) || e.Cause == "reconcile")
            {
                continue; // power_state catching up after the task: not a step of the command
            }

            if (pendingSkips > 0)
            {
                pendingSkips--;
                continue;
            }

            seen.Add((e.VmState, e.TaskState));
        }

        if (!expected.SequenceEqual(seen))
        {
            // Say why: the instance's fault names what failed.
            var now = await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid.ToString() });
            Assert.Fail($"expected {string.Join(", ", expected)} but saw {string.Join(", ", seen)}; fault: {now.Fault?.Code} {now.Fault?.Message}");
        }

        using var domain = libvirt.TryLookupByUuid(uuid);
        Assert.Equal(libvirtState, domain?.GetState().State);
    }

    public void Dispose() => watch.Dispose();
}
