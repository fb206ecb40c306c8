namespace ComputeAgent.Instances.Model;

/// <summary>
/// The flavor extra_specs the agent acts on, parsed and range-checked. Keys in the namespaces the
/// agent owns (hw:, hw_rng:, hw_video:, quota:) that it does not know are refused, as Nova's extra
/// spec validator does; other namespaces (aggregate_instance_extra_specs:, trait:, resources:, …)
/// belong to the scheduler and are ignored.
/// </summary>
public sealed record FlavorExtraSpecs
{
    public static readonly FlavorExtraSpecs Empty = new();

    /// <summary>Every key this parser accepts, for the flavor extra specs table of src/README.md and error messages.</summary>
    public static readonly IReadOnlyList<string> SupportedKeys =
    [
        "hw:cpu_policy", "hw:cpu_sockets", "hw:cpu_cores", "hw:cpu_threads",
        "hw:cpu_max_sockets", "hw:cpu_max_cores", "hw:cpu_max_threads",
        "hw:mem_page_size", "hw:numa_nodes", "hw:watchdog_action", "hw:boot_menu", "hw:pmu",
        "hw:serial_port_count", "hw:pointer_model",
        "hw_rng:allowed", "hw_rng:rate_bytes", "hw_rng:rate_period", "hw_video:ram_max_mb",
        "quota:cpu_shares", "quota:cpu_period", "quota:cpu_quota",
        "quota:disk_read_bytes_sec", "quota:disk_write_bytes_sec", "quota:disk_total_bytes_sec",
        "quota:disk_read_iops_sec", "quota:disk_write_iops_sec", "quota:disk_total_iops_sec",
        "quota:vif_inbound_average", "quota:vif_inbound_peak", "quota:vif_inbound_burst",
        "quota:vif_outbound_average", "quota:vif_outbound_peak", "quota:vif_outbound_burst",
    ];

    private static readonly HashSet<string> Known = new(SupportedKeys, StringComparer.Ordinal);

    public CpuPolicy? CpuPolicy { get; init; }

    public CpuTopologyRequest Topology { get; init; } = CpuTopologyRequest.Unset;

    public MemPageSize? MemPageSize { get; init; }

    public int? NumaNodes { get; init; }

    public WatchdogAction? WatchdogAction { get; init; }

    public bool? BootMenu { get; init; }

    public bool? Pmu { get; init; }

    public int? SerialPortCount { get; init; }

    public PointerModel? PointerModel { get; init; }

    /// <summary>hw_rng:allowed; Nova's default is true: every guest gets a virtio RNG unless the flavor says false.</summary>
    public bool RngAllowed { get; init; } = true;

    public long? RngRateBytes { get; init; }

    public long? RngRatePeriodMs { get; init; }

    /// <summary>hw_video:ram_max_mb: the most video RAM an image may ask for with hw_video_ram (none when unset).</summary>
    public int VideoRamMaxMiB { get; init; }

    public int? CpuShares { get; init; }

    public long? CpuPeriod { get; init; }

    public long? CpuQuota { get; init; }

    public IoTune DiskIoTune { get; init; } = IoTune.None;

    public Bandwidth VifBandwidth { get; init; } = Bandwidth.None;

    public static FlavorExtraSpecs Parse(IReadOnlyDictionary<string, string>? extraSpecs)
    {
        if (extraSpecs is null || extraSpecs.Count == 0)
        {
            return Empty;
        }

        foreach (var key in extraSpecs.Keys)
        {
            if (!Known.Contains(key) && (key.StartsWith("hw:", StringComparison.Ordinal) || key.StartsWith("hw_rng:", StringComparison.Ordinal)
                || key.StartsWith("hw_video:", StringComparison.Ordinal) || key.StartsWith("quota:", StringComparison.Ordinal)))
            {
                throw new InvalidInstanceSpecException($"flavor.extra_specs[{key}]", extraSpecs[key], "the keys " + string.Join(", ", SupportedKeys));
            }
        }

        string? Get(string key) => extraSpecs.TryGetValue(key, out var v) ? v : null;
        static string F(string key) => $"flavor.extra_specs[{key}]";
        int? Int(string key, int min, int max) => Get(key) is { } v ? SpecValues.ParseInt(F(key), v, min, max) : null;
        long? Long(string key, long min, long max) => Get(key) is { } v ? SpecValues.ParseLong(F(key), v, min, max) : null;
        bool? Bool(string key) => Get(key) is { } v ? SpecValues.ParseBool(F(key), v) : null;

        var cpuQuota = Long("quota:cpu_quota", -1, 17_592_186_044_415);
        if (cpuQuota is > -1 and < 1000)
        {
            throw new InvalidInstanceSpecException(F("quota:cpu_quota"), Get("quota:cpu_quota"), "-1 (no limit) or 1000 to 17592186044415 microseconds");
        }

        return new FlavorExtraSpecs
        {
            CpuPolicy = Get("hw:cpu_policy") is { } policy ? ParseCpuPolicy(F("hw:cpu_policy"), policy) : null,
            Topology = new CpuTopologyRequest(
                Int("hw:cpu_sockets", 1, Flavor.MaxVcpus), Int("hw:cpu_cores", 1, Flavor.MaxVcpus), Int("hw:cpu_threads", 1, Flavor.MaxVcpus),
                Int("hw:cpu_max_sockets", 1, Flavor.MaxVcpus), Int("hw:cpu_max_cores", 1, Flavor.MaxVcpus), Int("hw:cpu_max_threads", 1, Flavor.MaxVcpus)),
            MemPageSize = Get("hw:mem_page_size") is { } page ? Model.MemPageSize.Parse(F("hw:mem_page_size"), page) : null,
            NumaNodes = Int("hw:numa_nodes", 1, 64),
            WatchdogAction = Get("hw:watchdog_action") is { } action ? ParseWatchdogAction(F("hw:watchdog_action"), action) : null,
            BootMenu = Bool("hw:boot_menu"),
            Pmu = Bool("hw:pmu"),
            SerialPortCount = Int("hw:serial_port_count", 1, 8),
            PointerModel = Get("hw:pointer_model") is { } pointer ? ParsePointerModel(F("hw:pointer_model"), pointer) : null,
            RngAllowed = Bool("hw_rng:allowed") ?? true,
            RngRateBytes = Long("hw_rng:rate_bytes", 1, uint.MaxValue),
            RngRatePeriodMs = Long("hw_rng:rate_period", 1, uint.MaxValue),
            VideoRamMaxMiB = Int("hw_video:ram_max_mb", 0, 4096) ?? 0,
            CpuShares = Int("quota:cpu_shares", 2, 262_144),
            CpuPeriod = Long("quota:cpu_period", 1000, 1_000_000),
            CpuQuota = cpuQuota,
            DiskIoTune = ParseIoTune(Long, "quota:disk_", F),
            VifBandwidth = new Bandwidth(
                ParseBandwidth(Long, "quota:vif_inbound_", Get),
                ParseBandwidth(Long, "quota:vif_outbound_", Get)),
        };
    }

    internal static IoTune ParseIoTune(Func<string, long, long, long?> read, string prefix, Func<string, string> fieldName)
    {
        const long max = long.MaxValue / 2;
        var tune = new IoTune(
            read(prefix + "read_bytes_sec", 0, max), read(prefix + "write_bytes_sec", 0, max), read(prefix + "total_bytes_sec", 0, max),
            read(prefix + "read_iops_sec", 0, max), read(prefix + "write_iops_sec", 0, max), read(prefix + "total_iops_sec", 0, max));

        // libvirt refuses a total limit next to a read or write limit of the same kind.
        if (tune.TotalBytesSec is not null && (tune.ReadBytesSec is not null || tune.WriteBytesSec is not null))
        {
            throw new InvalidInstanceSpecException(fieldName(prefix + "total_bytes_sec"), tune.TotalBytesSec.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), $"either {prefix}total_bytes_sec or {prefix}read/write_bytes_sec, not both");
        }

        if (tune.TotalIopsSec is not null && (tune.ReadIopsSec is not null || tune.WriteIopsSec is not null))
        {
            throw new InvalidInstanceSpecException(fieldName(prefix + "total_iops_sec"), tune.TotalIopsSec.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), $"either {prefix}total_iops_sec or {prefix}read/write_iops_sec, not both");
        }

        return tune.IsEmpty ? IoTune.None : tune;
    }

    private static BandwidthLimit? ParseBandwidth(Func<string, long, long, long?> read, string prefix, Func<string, string?> get)
    {
        const long max = uint.MaxValue;
        var average = read(prefix + "average", 1, max);
        var peak = read(prefix + "peak", 1, max);
        var burst = read(prefix + "burst", 1, max);
        if (average is null)
        {
            // libvirt requires the average whenever a peak or burst is given.
            return peak is null && burst is null
                ? null
                : throw new InvalidInstanceSpecException($"flavor.extra_specs[{prefix}average]", get(prefix + "average"), $"an average (KB/s) whenever {prefix}peak or {prefix}burst is set");
        }

        return new BandwidthLimit(average.Value, peak, burst);
    }

    internal static CpuPolicy ParseCpuPolicy(string field, string value) => value switch
    {
        "shared" => Model.CpuPolicy.Shared,
        "dedicated" => Model.CpuPolicy.Dedicated,
        _ => throw new InvalidInstanceSpecException(field, value, "shared, dedicated"),
    };

    internal static WatchdogAction ParseWatchdogAction(string field, string value) => value switch
    {
        "disabled" => Model.WatchdogAction.Disabled,
        "pause" => Model.WatchdogAction.Pause,
        "poweroff" => Model.WatchdogAction.Poweroff,
        "reset" => Model.WatchdogAction.Reset,
        "none" => Model.WatchdogAction.None,
        _ => throw new InvalidInstanceSpecException(field, value, "disabled, pause, poweroff, reset, none"),
    };

    internal static PointerModel ParsePointerModel(string field, string value) => value switch
    {
        "usbtablet" => Model.PointerModel.UsbTablet,
        "ps2mouse" => Model.PointerModel.Ps2Mouse,
        _ => throw new InvalidInstanceSpecException(field, value, "usbtablet, ps2mouse"),
    };
}
