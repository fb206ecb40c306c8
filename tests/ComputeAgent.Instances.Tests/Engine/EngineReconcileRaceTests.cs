using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Instances.Tests.Images;
using ComputeAgent.Libvirt;
using Xunit;

namespace ComputeAgent.Instances.Tests.Engine;

/// <summary>
/// Issue 13 item 1: reconcile passes that overlap a burst of spawns must not change any instance.
/// A bulk read taken while a spawn was still defining its domain shows it NOSTATE or SHUTDOWN;
/// applied after the spawn ended, it put running guests in ERROR or flapped them through STOPPED.
/// </summary>
[Collection(DomainXmlLibvirtCollection.Name)]
public sealed class EngineReconcileRaceTests : IDisposable
{
    private const string Uri = DomainXmlLibvirtCollection.Uri;
    private const int Burst = 250;
    private const int Rounds = 2;

    private static readonly (VmState, TaskState, PowerState)[] SpawnSequence =
    [
        (VmState.Building, TaskState.Scheduling, PowerState.NoState),
        (VmState.Building, TaskState.Networking, PowerState.NoState),
        (VmState.Building, TaskState.BlockDeviceMapping, PowerState.NoState),
        (VmState.Building, TaskState.Spawning, PowerState.NoState),
        (VmState.Active, TaskState.None, PowerState.Running),
    ];

    private readonly TestImages images = new();

    [Theory]
    [InlineData(1000)]
    [InlineData(100)]
    public async Task Reconcile_passes_overlapping_a_spawn_burst_make_no_transition(int intervalMilliseconds)
    {
        var baseImage = Path.Combine(images.Scratch, "base.qcow2");
        await File.WriteAllBytesAsync(baseImage, await images.Qcow2Async());
        await using var harness = await EngineHarness.StartAsync(Uri, new EngineOptions
        {
            ReconcileInterval = TimeSpan.FromMilliseconds(intervalMilliseconds),
            MaxConcurrentBuilds = 50,
        });

        var spawned = new List<Guid>();
        for (var round = 0; round < Rounds; round++)
        {
            var uuids = Enumerable.Range(0, Burst).Select(_ => Guid.NewGuid()).ToList();
            spawned.AddRange(uuids);

            // Besides the engine's own loop, passes back to back for the whole burst: every spawn's
            // end falls between some pass's bulk read and its decisions.
            using var burstOver = new CancellationTokenSource();
            var hammer = Task.Run(async () =>
            {
                while (!burstOver.IsCancellationRequested)
                {
                    await harness.Engine.ReconcileAsync(CancellationToken.None);
                }
            });

            await Task.WhenAll(uuids.Select(uuid => harness.Engine.SpawnAsync(EngineQemuTests.TinySpec(uuid), _ => Task.FromResult(baseImage), CancellationToken.None)));
            await WaitForBuildsToEndAsync(harness, uuids);

            await burstOver.CancelAsync();
            await hammer;
        }

        // Two more passes after the burst: whatever a stale read would do, it has done by now.
        await harness.Engine.ReconcileAsync(CancellationToken.None);
        await harness.Engine.ReconcileAsync(CancellationToken.None);

        var events = await harness.Store.ReadEventsAsync(0, 100_000);
        var wrong = new List<string>();
        foreach (var uuid in spawned)
        {
            var sequence = events.Where(e => e.Uuid == uuid).Select(e => (e.NewVmState, e.NewTaskState, e.NewPowerState)).ToArray();
            if (!sequence.SequenceEqual(SpawnSequence))
            {
                wrong.Add($"{uuid}: {string.Join(" -> ", events.Where(e => e.Uuid == uuid).Select(e => $"{e.NewVmState}/{e.NewTaskState}/{e.NewPowerState} ({e.Cause})"))}");
            }

            Assert.Empty(await harness.Store.ListFaultsAsync(uuid));
        }

        Assert.True(wrong.Count == 0, $"{wrong.Count} of {spawned.Count} instances made transitions no spawn explains:\n{string.Join('\n', wrong.Take(10))}");
        using var libvirt = LibvirtConnection.Open(Uri);
        foreach (var uuid in spawned)
        {
            using var domain = libvirt.LookupByUuid(uuid);
            Assert.Equal(DomainState.Running, domain.GetState().State);
            Assert.Equal((VmState.Active, PowerState.Running), (harness.Engine.Find(uuid)!.VmState, harness.Engine.Find(uuid)!.PowerState));
        }
    }

    [Fact]
    public async Task An_error_that_power_sync_caused_heals_when_libvirt_shows_the_guest_running_again()
    {
        await using var harness = await EngineHarness.StartAsync(Uri);
        using var behindTheBack = LibvirtConnection.Open(Uri);
        var uuid = EngineHarness.DefineTestDomainOfOurs(behindTheBack, start: true);
        await harness.RestartAsync(); // adopted at start, as ACTIVE
        Assert.Equal(VmState.Active, harness.Engine.Find(uuid)!.VmState);

        using (var domain = behindTheBack.LookupByUuid(uuid))
        {
            domain.Destroy();
            domain.Undefine(); // the domain vanished: nothing the agent did explains it
        }

        await harness.Engine.ReconcileAsync(CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Error, TaskState.None, PowerState.NoState);
        Assert.Equal("power_sync", (await harness.Store.ListFaultsAsync(uuid))[^1].Code);

        // The ERROR and its cause survive a restart of the agent.
        await harness.RestartAsync();
        Assert.Equal(VmState.Error, harness.Engine.Find(uuid)!.VmState);

        // The same guest is back and running (an operator re-defined and started it).
        using (var domain = behindTheBack.DefineXml(Samples.TestDriverDomainOfOurs(uuid)))
        {
            domain.Create();
        }

        await harness.Engine.ReconcileAsync(CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Active, TaskState.None, PowerState.Running);
        await harness.Engine.SubmitAsync(uuid, InstanceCommand.Delete, CancellationToken.None);
        await harness.WaitForAsync(uuid, VmState.Deleted, TaskState.None);
    }

    public void Dispose() => images.Dispose();

    /// <summary>Until no instance of the burst is BUILDING any more (a hang bound, not a speed check).</summary>
    private static async Task WaitForBuildsToEndAsync(EngineHarness harness, List<Guid> uuids)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        while (uuids.Any(u => harness.Engine.Find(u) is not { TaskState: TaskState.None }))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{uuids.Count(u => harness.Engine.Find(u) is not { TaskState: TaskState.None })} spawns still running after 5 minutes");
            await Task.Delay(50);
        }
    }
}
