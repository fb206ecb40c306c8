using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ComputeAgent.Host.Controller;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;

namespace ComputeAgent.Host.Metrics;

/// <summary>
/// The host's instruments on <see cref="AgentMeter"/>: instances by state, the controller link,
/// the image cache, the agent process itself, and how long a committed event takes to reach a
/// watcher. The observable ones are read when /metrics is scraped, not before.
/// </summary>
public sealed class HostMetrics
{
    private static readonly Histogram<double> EventDelivery = AgentMeter.Meter.CreateHistogram<double>(
        "event_delivery_seconds",
        description: "From an instance event's commit to its write on a watch stream, by watcher (grpc: WatchInstances, controller: the controller link).");

    // A state pair seen once is reported (as 0) after its last instance left it, so a dashboard sees it drop.
    private readonly ConcurrentDictionary<(string VmState, string TaskState), bool> statePairs = new();

    public HostMetrics(AgentRuntime runtime, ImageSource images, ControllerLink? link)
    {
        ArgumentNullException.ThrowIfNull(runtime);
        ArgumentNullException.ThrowIfNull(images);
        var meter = AgentMeter.Meter;
        meter.CreateObservableGauge("instances", () => Instances(runtime), description: "Instances on this host (deleted ones excluded), by vm_state and task_state.");
        if (link is not null)
        {
            meter.CreateObservableGauge("controller_link_connected", () => link.IsConnected ? 1 : 0, description: "1 while the link to the controller is up, else 0.");
            meter.CreateObservableGauge("controller_link_unacknowledged_events", () => link.UnacknowledgedEvents, description: "Instance events committed that the controller has not acknowledged yet (sent again after a reconnect).");
        }

        if (images.Cache is { } cache)
        {
            meter.CreateObservableGauge("image_cache_size_bytes", () => cache.SizeBytes, description: "Bytes the base-image cache holds.");
        }

        meter.CreateObservableGauge("process_resident_memory_bytes", () => Environment.WorkingSet, description: "The agent process's resident memory (RSS).");
        meter.CreateObservableGauge("gc_heap_bytes", () => GC.GetTotalMemory(forceFullCollection: false), description: "Bytes the .NET heap holds now.");
        meter.CreateObservableCounter("gc_collections_total", () => Collections(), description: "Garbage collections since the agent started, by generation.");
    }

    /// <summary>Records how long <paramref name="record"/> took from its commit to this write to a watcher.</summary>
    public static void Delivered(EventRecord record, string watcher)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (EventDelivery.Enabled)
        {
            var seconds = Math.Max(0, (DateTimeOffset.UtcNow - record.CreatedAt).TotalSeconds);
            EventDelivery.Record(seconds, new KeyValuePair<string, object?>("watcher", watcher));
        }
    }

    private List<Measurement<int>> Instances(AgentRuntime runtime)
    {
        if (runtime.Engine is not { } engine)
        {
            return [];
        }

        var counts = engine.List().CountBy(r => (r.VmState.ToDisplayName(), r.TaskState.ToDisplayName())).ToDictionary(p => p.Key, p => p.Value);
        foreach (var pair in counts.Keys)
        {
            statePairs.TryAdd(pair, true);
        }

        return statePairs.Keys.Select(pair => new Measurement<int>(
            counts.GetValueOrDefault(pair),
            new KeyValuePair<string, object?>("vm_state", pair.VmState),
            new KeyValuePair<string, object?>("task_state", pair.TaskState))).ToList();
    }

    private static IEnumerable<Measurement<long>> Collections()
    {
        for (var generation = 0; generation <= GC.MaxGeneration; generation++)
        {
            yield return new Measurement<long>(GC.CollectionCount(generation), new KeyValuePair<string, object?>("generation", generation.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
    }
}
