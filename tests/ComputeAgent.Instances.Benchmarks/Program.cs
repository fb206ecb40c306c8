using BenchmarkDotNet.Running;
using ComputeAgent.Instances.Benchmarks;

// BenchmarkDotNet arguments pass through, e.g. --job short --inProcess, or --artifacts DIR.
var summary = BenchmarkRunner.Run<DomainXmlBenchmarks>(args: args);
foreach (var report in summary.Reports)
{
    if (report.ResultStatistics is { } stats)
    {
        Console.WriteLine($"{report.BenchmarkCase.Descriptor.WorkloadMethod.Name}: {1e9 / stats.Median:N0} documents/s per core (median {stats.Median / 1000:N1} µs)");
    }
}

return summary.Reports.All(r => r.Success) && !summary.Reports.IsEmpty ? 0 : 1;
