using System.Diagnostics;
using System.Globalization;
using ComputeAgent.Libvirt;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>
/// The CPU one reconcile pass costs (issue 18's table), against the libvirt call it is built on
/// made directly: one virConnectGetAllDomainStats(STATE) over every domain, the "list all +
/// states" floor. Process CPU time (every thread: the pass's continuations and the GC included),
/// over many passes, divided by the passes; the engine is otherwise idle.
/// </summary>
internal static class ReconcileCpu
{
    public static async Task<int> RunAsync(int domains, int passes)
    {
        await using var scale = await EngineScale.StartAsync(domains);
        for (var i = 0; i < passes / 10 + 1; i++)
        {
            await scale.Engine.ReconcileAsync(CancellationToken.None);
            _ = scale.Connection.GetAllDomainStats(DomainStatsTypes.State);
        }

        var (agentCpu, agentWall) = await MeasureAsync(passes, () => scale.Engine.ReconcileAsync(CancellationToken.None));
        var (rawCpu, rawWall) = await MeasureAsync(passes, () =>
        {
            _ = scale.Connection.GetAllDomainStats(DomainStatsTypes.State);
            return Task.CompletedTask;
        });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"reconcile pass, {domains} instances, {passes} passes: CPU {agentCpu:F2} ms (wall {agentWall:F2} ms); virConnectGetAllDomainStats(STATE) directly: CPU {rawCpu:F2} ms (wall {rawWall:F2} ms); ratio {agentCpu / rawCpu:F2}"));
        return 0;
    }

    private static async Task<(double CpuMs, double WallMs)> MeasureAsync(int passes, Func<Task> pass)
    {
        using var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpu = process.TotalProcessorTime;
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < passes; i++)
        {
            await pass();
        }

        var wall = Stopwatch.GetElapsedTime(start);
        process.Refresh();
        return ((process.TotalProcessorTime - cpu).TotalMilliseconds / passes, wall.TotalMilliseconds / passes);
    }
}
