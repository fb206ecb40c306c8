using System.Globalization;
using BenchmarkDotNet.Running;
using ComputeAgent.Instances.Benchmarks;

// --event-latency [ROUNDS]: the engine's event-to-record latency percentiles (not a BenchmarkDotNet run).
// --reconcile-cpu [DOMAINS] [PASSES]: CPU per reconcile pass against the bulk libvirt call made directly.
// --raw-hold [DOMAINS]: this process's RSS growth holding that many of the agent's domains on test:///default.
// Anything else goes to BenchmarkDotNet, e.g. --filter '*DomainXml*' --job short --inProcess.
if (args is ["--event-latency", .. var rest])
{
    return await EventLatency.RunAsync(rest.Length > 0 ? int.Parse(rest[0], CultureInfo.InvariantCulture) : 500);
}

if (args is ["--reconcile-cpu", .. var passArgs])
{
    return await ReconcileCpu.RunAsync(
        passArgs.Length > 0 ? int.Parse(passArgs[0], CultureInfo.InvariantCulture) : 1000,
        passArgs.Length > 1 ? int.Parse(passArgs[1], CultureInfo.InvariantCulture) : 200);
}

if (args is ["--raw-hold", .. var holdArgs])
{
    return RawHold.Run(holdArgs.Length > 0 ? int.Parse(holdArgs[0], CultureInfo.InvariantCulture) : 1000);
}

var summaries = BenchmarkSwitcher.FromAssembly(typeof(DomainXmlBenchmarks).Assembly).Run(args);
foreach (var report in summaries.SelectMany(s => s.Reports))
{
    if (report.ResultStatistics is { } stats)
    {
        Console.WriteLine($"{report.BenchmarkCase.DisplayInfo}: median {stats.Median / 1000:N1} µs ({1e9 / stats.Median:N0}/s per core)");
    }
}

return summaries.All(s => s.Reports.All(r => r.Success) && !s.Reports.IsEmpty) ? 0 : 1;
