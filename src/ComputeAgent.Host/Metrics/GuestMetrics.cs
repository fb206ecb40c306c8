using ComputeAgent.Libvirt;
using Prometheus;

namespace ComputeAgent.Host.Metrics;

/// <summary>
/// Per-guest series, refreshed once per scrape from ONE virConnectGetAllDomainStats call whose
/// snapshot every series shares (never a call per domain). Labelled by instance_uuid and project
/// (the engine's record: spec owner); domains that are not the agent's instances are left out.
/// A guest that went away loses its series at the next scrape; a counter that went down (the
/// guest's QEMU restarted) starts a new series, which Prometheus reads as a counter reset.
/// </summary>
public sealed partial class GuestMetrics
{
    private static readonly string[] GuestLabels = ["instance_uuid", "project"];

    private readonly Func<CancellationToken, Task<LibvirtConnection>> connect;
    private readonly Func<IReadOnlyDictionary<Guid, string>> projects;
    private readonly ILogger logger;
    private readonly Gauge up;
    private readonly Series cpu;
    private readonly Series vcpu;
    private readonly Series balloonCurrent;
    private readonly Series balloonAvailable;
    private readonly Series balloonUnused;
    private readonly Series readBytes;
    private readonly Series writeBytes;
    private readonly Series readRequests;
    private readonly Series writeRequests;
    private readonly Series blockErrors;
    private readonly Series rxBytes;
    private readonly Series txBytes;
    private readonly Series rxPackets;
    private readonly Series txPackets;
    private readonly Series rxDrops;
    private readonly Series txDrops;
    private readonly Series[] all;

    /// <param name="connect">The libvirt connection to ask (the agent's session).</param>
    /// <param name="projects">The agent's instances: UUID → project id.</param>
    public GuestMetrics(CollectorRegistry registry, Func<CancellationToken, Task<LibvirtConnection>> connect, Func<IReadOnlyDictionary<Guid, string>> projects, ILogger<GuestMetrics> logger)
    {
        this.connect = connect ?? throw new ArgumentNullException(nameof(connect));
        this.projects = projects ?? throw new ArgumentNullException(nameof(projects));
        this.logger = logger ?? throw new ArgumentNullException(nameof(logger));
        var factory = (MetricFactory)Prometheus.Metrics.WithCustomRegistry(registry);
        up = factory.CreateGauge("compute_agent_guest_stats_up", "1 when this scrape's bulk libvirt call for the guests' counters succeeded, else 0 (the agent's log says why).");
        cpu = Series.Counter(factory, "compute_agent_guest_cpu_seconds_total", "CPU time the guest used (libvirt cpu.time).");
        vcpu = Series.Counter(factory, "compute_agent_guest_vcpu_seconds_total", "CPU time of each virtual CPU (libvirt vcpu.N.time).", "vcpu");
        balloonCurrent = Series.Gauge(factory, "compute_agent_guest_balloon_current_bytes", "Memory the guest has now (libvirt balloon.current).");
        balloonAvailable = Series.Gauge(factory, "compute_agent_guest_balloon_available_bytes", "Memory the guest's OS sees (libvirt balloon.available; needs the guest's balloon driver).");
        balloonUnused = Series.Gauge(factory, "compute_agent_guest_balloon_unused_bytes", "Memory the guest's OS leaves unused (libvirt balloon.unused; needs the guest's balloon driver).");
        readBytes = Series.Counter(factory, "compute_agent_guest_block_read_bytes_total", "Bytes read from each disk.", "disk");
        writeBytes = Series.Counter(factory, "compute_agent_guest_block_write_bytes_total", "Bytes written to each disk.", "disk");
        readRequests = Series.Counter(factory, "compute_agent_guest_block_read_requests_total", "Read requests to each disk.", "disk");
        writeRequests = Series.Counter(factory, "compute_agent_guest_block_write_requests_total", "Write requests to each disk.", "disk");
        blockErrors = Series.Counter(factory, "compute_agent_guest_block_errors_total", "I/O errors of each disk, where the hypervisor driver counts them (QEMU does not).", "disk");
        rxBytes = Series.Counter(factory, "compute_agent_guest_network_receive_bytes_total", "Bytes the guest received on each interface.", "interface");
        txBytes = Series.Counter(factory, "compute_agent_guest_network_transmit_bytes_total", "Bytes the guest sent on each interface.", "interface");
        rxPackets = Series.Counter(factory, "compute_agent_guest_network_receive_packets_total", "Packets the guest received on each interface.", "interface");
        txPackets = Series.Counter(factory, "compute_agent_guest_network_transmit_packets_total", "Packets the guest sent on each interface.", "interface");
        rxDrops = Series.Counter(factory, "compute_agent_guest_network_receive_drops_total", "Received packets dropped on each interface.", "interface");
        txDrops = Series.Counter(factory, "compute_agent_guest_network_transmit_drops_total", "Sent packets dropped on each interface.", "interface");
        all = [cpu, vcpu, balloonCurrent, balloonAvailable, balloonUnused, readBytes, writeBytes, readRequests, writeRequests, blockErrors, rxBytes, txBytes, rxPackets, txPackets, rxDrops, txDrops];
    }

    /// <summary>One bulk call, then every series set from its answer; series of guests no longer there are removed.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<GuestStats> guests;
        try
        {
            var connection = await connect(cancellationToken).ConfigureAwait(false);
            guests = await Task.Run(() => connection.GetAllGuestStats(), cancellationToken).ConfigureAwait(false);
            up.Set(1);
        }
        catch (Exception ex) when (ex is LibvirtException or AgentNotReadyException)
        {
            // The host's own series are still worth a scrape: report no guests, and say why in the log.
            LogStatsFailed(logger, ex.Message);
            guests = [];
            up.Set(0);
        }

        var owners = projects();
        foreach (var guest in guests)
        {
            if (!owners.TryGetValue(guest.Uuid, out var project))
            {
                continue;
            }

            var uuid = guest.Uuid.ToString();
            string[] labels = [uuid, project];
            Set(cpu, labels, guest.CpuTimeNs, 1e-9);
            Set(balloonCurrent, labels, guest.BalloonCurrentKiB, 1024);
            Set(balloonAvailable, labels, guest.BalloonAvailableKiB, 1024);
            Set(balloonUnused, labels, guest.BalloonUnusedKiB, 1024);
            foreach (var v in guest.Vcpus)
            {
                Set(vcpu, [uuid, project, v.Index.ToString(System.Globalization.CultureInfo.InvariantCulture)], v.TimeNs, 1e-9);
            }

            foreach (var disk in guest.Disks)
            {
                string[] diskLabels = [uuid, project, disk.Name];
                Set(readBytes, diskLabels, disk.ReadBytes);
                Set(writeBytes, diskLabels, disk.WriteBytes);
                Set(readRequests, diskLabels, disk.ReadRequests);
                Set(writeRequests, diskLabels, disk.WriteRequests);
                Set(blockErrors, diskLabels, disk.Errors);
            }

            foreach (var nic in guest.Interfaces)
            {
                string[] nicLabels = [uuid, project, nic.Name];
                Set(rxBytes, nicLabels, nic.RxBytes);
                Set(txBytes, nicLabels, nic.TxBytes);
                Set(rxPackets, nicLabels, nic.RxPackets);
                Set(txPackets, nicLabels, nic.TxPackets);
                Set(rxDrops, nicLabels, nic.RxDrops);
                Set(txDrops, nicLabels, nic.TxDrops);
            }
        }

        foreach (var series in all)
        {
            series.Sweep();
        }
    }

    private static void Set(Series series, string[] labels, ulong? value, double scale = 1)
    {
        if (value is { } v)
        {
            series.Set(labels, v * scale);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Guest metrics: the bulk libvirt call failed, so this scrape has no guest series: {Reason}")]
    private static partial void LogStatsFailed(ILogger logger, string reason);

    /// <summary>One metric family and the label sets it was given in the current and the last refresh.</summary>
    private sealed class Series(Action<string[], double> set, Action<string[]> remove)
    {
        private Dictionary<string, string[]> seen = new(StringComparer.Ordinal);
        private Dictionary<string, string[]> previous = new(StringComparer.Ordinal);

        public static Series Counter(MetricFactory factory, string name, string help, string? extraLabel = null)
        {
            var counter = factory.CreateCounter(name, help, Labels(extraLabel));
            return new Series(
                (labels, value) =>
                {
                    var child = counter.WithLabels(labels);
                    if (value < child.Value)
                    {
                        // The guest's counters restarted from zero: a new series, read as a reset.
                        counter.RemoveLabelled(labels);
                        child = counter.WithLabels(labels);
                    }

                    child.IncTo(value);
                },
                labels => counter.RemoveLabelled(labels));
        }

        public static Series Gauge(MetricFactory factory, string name, string help)
        {
            var gauge = factory.CreateGauge(name, help, Labels(null));
            return new Series((labels, value) => gauge.WithLabels(labels).Set(value), labels => gauge.RemoveLabelled(labels));
        }

        public void Set(string[] labels, double value)
        {
            set(labels, value);
            seen[string.Join('\u001f', labels)] = labels;
        }

        /// <summary>Removes the series the last refresh set and this one did not.</summary>
        public void Sweep()
        {
            foreach (var (key, labels) in previous)
            {
                if (!seen.ContainsKey(key))
                {
                    remove(labels);
                }
            }

            (previous, seen) = (seen, previous);
            seen.Clear();
        }

        private static string[] Labels(string? extra) => extra is null ? GuestLabels : [.. GuestLabels, extra];
    }
}
