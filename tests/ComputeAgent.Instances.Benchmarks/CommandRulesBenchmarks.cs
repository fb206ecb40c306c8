using BenchmarkDotNet.Attributes;
using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>One state-table decision per call (issue 3 item 6): accepted and refused, which must not allocate.</summary>
[MemoryDiagnoser]
public class CommandRulesBenchmarks
{
    // Fields, not constants: the JIT must not fold the decision away.
    private InstanceCommand pause = InstanceCommand.Pause;
    private InstanceCommand resume = InstanceCommand.Resume;
    private InstanceCommand delete = InstanceCommand.Delete;
    private VmState active = VmState.Active;
    private VmState building = VmState.Building;
    private TaskState none = TaskState.None;
    private TaskState spawning = TaskState.Spawning;

    [Benchmark(Baseline = true)]
    public bool Accepted() => CommandRules.Decide(pause, active, none).IsAccepted;

    [Benchmark]
    public bool Refused() => CommandRules.Decide(resume, active, none).IsAccepted;

    [Benchmark]
    public bool DeletePreempting() => CommandRules.Decide(delete, building, spawning).Preempts;
}
