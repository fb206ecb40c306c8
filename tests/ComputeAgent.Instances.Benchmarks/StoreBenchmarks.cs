using BenchmarkDotNet.Attributes;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using Microsoft.Data.Sqlite;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>
/// SQLite append throughput with WAL (issue 3, item 6): state changes committed per second when
/// many instances change at once (the store's single writer batches them), and the latency of one
/// change committed alone. Every change flips power_state, so every one appends an event row.
/// Target: ≥ 20,000 state changes/s batched. The file is under the temp directory, or under
/// COMPUTE_AGENT_BENCH_DIR (e.g. a directory on the file system of /var/lib).
/// </summary>
[MemoryDiagnoser]
public class StoreBenchmarks
{
    private const int Instances = 1000;
    private const int BatchedChanges = 10_000;

    private readonly Guid[] uuids = new Guid[Instances];
    private string path = string.Empty;
    private InstanceStore? store;
    private bool singlePaused;

    private InstanceStore Store => store ?? throw new InvalidOperationException("not set up");

    [GlobalSetup]
    public async Task SetupAsync()
    {
        var directory = Environment.GetEnvironmentVariable("COMPUTE_AGENT_BENCH_DIR") ?? Path.GetTempPath();
        path = Path.Combine(directory, $"store-bench-{Guid.NewGuid():N}.db");
        store = await InstanceStore.OpenAsync(path);
        for (var i = 0; i < Instances; i++)
        {
            var spec = Samples.Typical(Guid.NewGuid());
            uuids[i] = spec.Uuid;
            await store.CommitAsync(new StateChange(spec.Uuid, VmState.Active, TaskState.None, PowerState.Running, "setup") { Spec = spec });
        }
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await Store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { string.Empty, "-wal", "-shm" })
        {
            File.Delete(path + suffix);
        }
    }

    /// <summary>10,000 changes of 1,000 instances queued at once, as after a host-wide event; per change.</summary>
    [Benchmark(OperationsPerInvoke = BatchedChanges)]
    public async Task<long> BatchedStateChanges()
    {
        var tasks = new Task<long>[BatchedChanges];
        // Each instance gets BatchedChanges / Instances (an even number of) changes per call, each flipping its power_state.
        for (var i = 0; i < BatchedChanges; i++)
        {
            var power = i / Instances % 2 == 0 ? PowerState.Paused : PowerState.Running;
            tasks[i] = Store.CommitAsync(new StateChange(uuids[i % Instances], VmState.Active, TaskState.None, power, "libvirt event"));
        }

        await Task.WhenAll(tasks);
        return await tasks[^1];
    }

    /// <summary>One change, committed and awaited alone: the latency a lifecycle event sees.</summary>
    [Benchmark]
    public Task<long> SingleCommit()
    {
        singlePaused = !singlePaused;
        var power = singlePaused ? PowerState.Paused : PowerState.Running;
        return Store.CommitAsync(new StateChange(uuids[0], VmState.Active, TaskState.None, power, "libvirt event"));
    }
}
