using System.Globalization;
using System.Text;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Running;
using ComputeAgent.Libvirt.Benchmarks;

// The floor suite: native/libvirt-floor's five loops through the managed wrapper.
//   ComputeAgent.Libvirt.Benchmarks [BenchmarkDotNet arguments, e.g. --artifacts DIR]
// writes, next to BenchmarkDotNet's own exports in <artifacts>/results, libvirt-floor-managed.tsv
// in libvirt-floor's format ("loop\titerations\tns_per_op", median ns per operation), which
// native/bench-ratio.sh joins with the C output. Exit code 1 when a loop produced no result.
//   ComputeAgent.Libvirt.Benchmarks --breakdown [...]
// runs the diagnostic WrapperBreakdownBenchmarks instead (raw P/Invoke next to the wrapper).
var config = new FloorConfig();
if (args.Contains("--breakdown"))
{
    var breakdown = BenchmarkRunner.Run<WrapperBreakdownBenchmarks>(config, [.. args.Where(a => a != "--breakdown")]);
    return breakdown.Reports.All(r => r.Success) && !breakdown.Reports.IsEmpty ? 0 : 1;
}

var summary = BenchmarkRunner.Run<LibvirtFloorBenchmarks>(config, args);

var tsv = new StringBuilder("loop\titerations\tns_per_op\n");
var failed = summary.HasCriticalValidationErrors || summary.Reports.IsEmpty;
foreach (var report in summary.Reports)
{
    var name = report.BenchmarkCase.Descriptor.WorkloadMethod.Name;
    if (!report.Success || report.ResultStatistics is null)
    {
        Console.Error.WriteLine($"benchmark {name} produced no result");
        failed = true;
        continue;
    }

    // "iterations" as in libvirt-floor: operations per measured iteration (its I per round).
    var operations = report.AllMeasurements
        .Where(m => m.IterationMode == IterationMode.Workload && m.IterationStage == IterationStage.Result)
        .Select(m => m.Operations)
        .FirstOrDefault();
    tsv.Append(CultureInfo.InvariantCulture, $"{name}\t{operations}\t{report.ResultStatistics.Median:F1}\n");
}

Directory.CreateDirectory(summary.ResultsDirectoryPath);
var path = Path.Combine(summary.ResultsDirectoryPath, "libvirt-floor-managed.tsv");
File.WriteAllText(path, tsv.ToString());
Console.WriteLine($"libvirt-floor-managed: wrote {path}");
return failed ? 1 : 0;
