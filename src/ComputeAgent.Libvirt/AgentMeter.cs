using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ComputeAgent.Libvirt;

/// <summary>
/// The agent's one <see cref="System.Diagnostics.Metrics.Meter"/>. It lives in the lowest project
/// because every other one references this one; the host exports it on Agent:MetricsListen.
/// Instrument names carry their unit (…_seconds, …_bytes) as Prometheus names do.
/// </summary>
public static class AgentMeter
{
    /// <summary>The exporter prefixes instrument names with it: compute_agent_….</summary>
    public const string Name = "compute-agent";

    public static Meter Meter { get; } = new(Name);

    private static readonly Histogram<double> LibvirtCallDuration = Meter.CreateHistogram<double>(
        "libvirt_call_duration_seconds",
        description: "How long each libvirt call took, by call (the libvirt function's name).");

    /// <summary>Where a timed libvirt call starts; pass it to <see cref="EndLibvirtCall"/> when it returns.</summary>
    internal static long StartLibvirtCall() => Stopwatch.GetTimestamp();

    internal static void EndLibvirtCall(long started, string call)
    {
        if (LibvirtCallDuration.Enabled)
        {
            LibvirtCallDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("call", call));
        }
    }
}
