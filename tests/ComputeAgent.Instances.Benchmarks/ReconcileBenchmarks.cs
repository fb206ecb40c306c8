using BenchmarkDotNet.Attributes;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>
/// The periodic reconcile (issue 3 item 6): one bulk virConnectGetAllDomainStats and a compare
/// against every record, at 1,000 and 5,000 domains. Target: 1,000 in under 50 ms, linear growth.
/// </summary>
[MemoryDiagnoser]
public class ReconcileBenchmarks
{
    private EngineScale? scale;

    [Params(1000, 5000)]
    public int Domains { get; set; }

    [GlobalSetup]
    public async Task SetupAsync() => scale = await EngineScale.StartAsync(Domains);

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (scale is not null)
        {
            await scale.DisposeAsync();
        }
    }

    [Benchmark]
    public Task Reconcile() => scale!.Engine.ReconcileAsync(CancellationToken.None);
}
