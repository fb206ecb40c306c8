using BenchmarkDotNet.Attributes;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.Tests.DomainXml;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>
/// One domain XML document per operation: parsing the flavor's extra_specs and the image's
/// properties, Nova's precedence rules, and writing the XML — what a spawn, hard reboot or resize
/// costs the agent. Target: ≥ 20,000 typical documents per second per core.
/// </summary>
[MemoryDiagnoser]
public class DomainXmlBenchmarks
{
    private readonly DomainXmlBuilder builder = new(Samples.Host);
    private readonly InstanceSpec typical = Samples.Typical(Guid.Parse("11111111-2222-4333-8444-555555555555"));
    private readonly InstanceSpec maximal = Samples.Maximal(Guid.Parse("11111111-2222-4333-8444-666666666666"));

    [Benchmark(Baseline = true)]
    public string Typical() => builder.Build(typical);

    [Benchmark]
    public string Maximal() => builder.Build(maximal);
}
