using System.Diagnostics;
using System.Globalization;
using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Instances.Benchmarks;

/// <summary>
/// Event-to-record latency (issue 3 item 6): from a change made behind the agent's back (a
/// suspend or resume through another libvirt connection) to the engine's committed, published
/// event-log row, over many round trips on test:///default with 1,000 instances. Target p99 &lt; 5 ms.
/// </summary>
internal static class EventLatency
{
    public static async Task<int> RunAsync(int rounds)
    {
        await using var scale = await EngineScale.StartAsync(1000);
        var uuid = scale.Uuids[0];
        using var events = scale.Engine.Events.Subscribe(CancellationToken.None);
        using var domain = scale.Connection.LookupByUuid(uuid);
        var samples = new List<double>(rounds * 2);
        for (var i = 0; i < rounds; i++)
        {
            samples.Add(await MeasureAsync(domain.Suspend, VmState.Paused));
            samples.Add(await MeasureAsync(domain.Resume, VmState.Active));
        }

        samples.Sort();
        string P(double q) => samples[(int)Math.Min(samples.Count - 1, Math.Ceiling(q * samples.Count) - 1)].ToString("F3", CultureInfo.InvariantCulture);
        Console.WriteLine($"event-to-record latency over {samples.Count} events with 1,000 instances: p50 {P(0.50)} ms, p99 {P(0.99)} ms, max {P(1.0)} ms");
        return 0;

        async Task<double> MeasureAsync(Action change, VmState expected)
        {
            var start = Stopwatch.GetTimestamp();
            change();
            while (true)
            {
                var e = await events.ReadAsync();
                if (e.Uuid == uuid && e.NewVmState == expected)
                {
                    return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
            }
        }
    }
}
