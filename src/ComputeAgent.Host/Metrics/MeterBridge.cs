using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ComputeAgent.Libvirt;
using Prometheus;

namespace ComputeAgent.Host.Metrics;

/// <summary>
/// Feeds the <see cref="AgentMeter"/> instruments into prometheus-net's collectors, each as its
/// Prometheus type (a .NET counter is a counter, a histogram a histogram), named
/// compute_agent_ + the instrument's name, labelled by its tags. prometheus-net 8.2.1's own
/// MeterAdapter published no series at all on .NET 10 here, and types counters as gauges.
/// </summary>
public sealed class MeterBridge : IDisposable
{
    private const string Prefix = "compute_agent_";
    private readonly MeterListener listener = new();
    private readonly MetricFactory factory;
    private readonly Func<Instrument, double[]> buckets;
    private readonly ConcurrentDictionary<Instrument, Collector> collectors = new();

    /// <param name="buckets">A histogram instrument's bucket bounds, in its unit.</param>
    public MeterBridge(CollectorRegistry registry, Func<Instrument, double[]> buckets)
    {
        factory = (MetricFactory)Prometheus.Metrics.WithCustomRegistry(registry);
        this.buckets = buckets ?? throw new ArgumentNullException(nameof(buckets));
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == AgentMeter.Name)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        listener.Start();
    }

    /// <summary>Asks the observable instruments for their values now (once per scrape).</summary>
    public void Observe() => listener.RecordObservableInstruments();

    public void Dispose() => listener.Dispose();

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var values = new string[tags.Length];
        var names = new string[tags.Length];
        for (var t = 0; t < tags.Length; t++)
        {
            names[t] = tags[t].Key;
        }

        // Tags come in any order: label values follow the names' sorted order.
        var order = Enumerable.Range(0, tags.Length).OrderBy(t => names[t], StringComparer.Ordinal).ToArray();
        var sortedNames = order.Select(t => names[t]).ToArray();
        for (var t = 0; t < order.Length; t++)
        {
            values[t] = Convert.ToString(tags[order[t]].Value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
        }

        var collector = collectors.GetOrAdd(instrument, i => Create(i, sortedNames));
        switch (collector)
        {
            case Counter counter when instrument.IsObservable:
                counter.WithLabels(values).IncTo(value);
                break;
            case Counter counter:
                counter.WithLabels(values).Inc(value);
                break;
            case Gauge gauge:
                gauge.WithLabels(values).Set(value);
                break;
            case Histogram histogram:
                histogram.WithLabels(values).Observe(value);
                break;
        }
    }

    private Collector Create(Instrument instrument, string[] labelNames)
    {
        var name = Prefix + instrument.Name;
        var help = instrument.Description ?? instrument.Name;
        var kind = instrument.GetType().GetGenericTypeDefinition();
        if (kind == typeof(Counter<>) || kind == typeof(ObservableCounter<>))
        {
            return factory.CreateCounter(name, help, labelNames);
        }

        if (kind == typeof(Histogram<>))
        {
            return factory.CreateHistogram(name, help, labelNames, new HistogramConfiguration { Buckets = buckets(instrument) });
        }

        return factory.CreateGauge(name, help, labelNames);
    }
}
