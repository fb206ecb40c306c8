using System.Diagnostics;
using System.Diagnostics.Metrics;
using ComputeAgent.Libvirt;

namespace ComputeAgent.Instances.Engine;

/// <summary>The engine's instruments: commands accepted, failed, and how long each took from the call to its task's end.</summary>
internal static class OperationMetrics
{
    private static readonly Counter<long> Started = AgentMeter.Meter.CreateCounter<long>(
        "operations_started_total", description: "Commands accepted (spawn included), by command.");

    private static readonly Counter<long> Failed = AgentMeter.Meter.CreateCounter<long>(
        "operations_failed_total", description: "Commands whose task ended in a fault, by command.");

    private static readonly Histogram<double> Duration = AgentMeter.Meter.CreateHistogram<double>(
        "operation_duration_seconds", description: "From the call that accepted a command to its task's end, by command and outcome (done, failed, interrupted).");

    /// <summary>Counts an accepted command; returns the time to pass to <see cref="Ended"/>.</summary>
    public static long Accepted(string command)
    {
        Started.Add(1, new KeyValuePair<string, object?>("command", command));
        return Stopwatch.GetTimestamp();
    }

    public static void Ended(string command, string outcome, long acceptedAt)
    {
        var commandTag = new KeyValuePair<string, object?>("command", command);
        if (outcome == "failed")
        {
            Failed.Add(1, commandTag);
        }

        Duration.Record(Stopwatch.GetElapsedTime(acceptedAt).TotalSeconds, commandTag, new KeyValuePair<string, object?>("outcome", outcome));
    }
}
