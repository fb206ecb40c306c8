using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Order;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;
using Perfolizer.Metrology;

namespace ComputeAgent.Libvirt.Benchmarks;

/// <summary>
/// The floor suite's configuration, passed explicitly (so BenchmarkDotNet's default exporters are
/// not merged in): DefaultConfig's loggers, columns, analysers and validators, plus
/// <list type="bullet">
/// <item>one short job, in-process (InProcessEmitToolchain: no generated project to build, which
/// is slow on 2 cores, would build this repository's projects in their own obj/ folders, and needs
/// no network), 3 warm-up and 10 measured iterations of ~250 ms per loop; the figure compared with
/// libvirt-floor's (the median over its rounds of round time / iterations) is likewise the median
/// over the measured iterations of iteration time / operations;</item>
/// <item>the memory diagnoser (bytes allocated per operation);</item>
/// <item>CSV (times in ns, invariant culture), full JSON and GitHub markdown exports in
/// &lt;artifacts&gt;/results, where Program also writes libvirt-floor-managed.tsv.</item>
/// </list>
/// The loops run in declaration order, the order of libvirt-floor.
/// Known environment difference: the in-process toolchain runs the loops on a thread of its own
/// (not the main thread, where libvirt-floor runs them) in a process with the runtime's threads,
/// so glibc serves libvirt's mallocs from another arena; raw P/Invoke of the C bodies measured
/// 2-4% above the C program (see WrapperBreakdownBenchmarks), part of every managed/C ratio.
/// </summary>
public sealed class FloorConfig : ManualConfig
{
    public FloorConfig()
    {
        var defaults = DefaultConfig.Instance;
        AddLogger([.. defaults.GetLoggers()]);
        AddColumnProvider([.. defaults.GetColumnProviders()]);
        AddAnalyser([.. defaults.GetAnalysers()]);
        AddValidator([.. defaults.GetValidators()]);
        ArtifactsPath = defaults.ArtifactsPath;

        AddJob(Job.Default
            .WithToolchain(InProcessEmitToolchain.Instance)
            .WithWarmupCount(3)
            .WithIterationCount(10)
            .WithIterationTime(TimeInterval.FromMilliseconds(250))
            .WithId("floor"));

        AddColumn(StatisticColumn.Median, StatisticColumn.Min, StatisticColumn.Max);
        AddDiagnoser(MemoryDiagnoser.Default);

        var nanoseconds = new SummaryStyle(CultureInfo.InvariantCulture, printUnitsInHeader: true, SizeUnit.B, TimeUnit.Nanosecond, printUnitsInContent: false);
        AddExporter(new CsvExporter(CsvSeparator.Comma, nanoseconds), JsonExporter.Full, MarkdownExporter.GitHub);
        WithOptions(ConfigOptions.DisableLogFile | ConfigOptions.JoinSummary);
        WithOrderer(new DefaultOrderer(SummaryOrderPolicy.Declared, MethodOrderPolicy.Declared));
    }
}
