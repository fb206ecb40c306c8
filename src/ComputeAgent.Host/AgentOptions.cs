using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Host;

/// <summary>
/// The agent's settings: /etc/compute-agent/agent.json, then COMPUTE_AGENT_* environment
/// variables (Agent__Key), then the command line (--Agent:Key=value). Checked at start.
/// </summary>
public sealed class AgentOptions
{
    public const string Section = "Agent";

    /// <summary>libvirt connection URI.</summary>
    public string LibvirtUri { get; set; } = "qemu:///system";

    /// <summary>kvm, qemu (TCG, no hardware virtualisation) or auto (kvm when /dev/kvm is usable).</summary>
    public string VirtType { get; set; } = "auto";

    /// <summary>Nova's [libvirt]cpu_mode: host-model, host-passthrough (kvm only), custom (the first of <see cref="CpuModels"/>) or none (QEMU's default CPU).</summary>
    public string CpuMode { get; set; } = "host-model";

    /// <summary>Nova's [libvirt]cpu_models: the named CPU models for cpu_mode custom; guests get the first.</summary>
    public List<string> CpuModels { get; set; } = [];

    /// <summary>Where the agent keeps its database.</summary>
    public string StateDirectory { get; set; } = "/var/lib/compute-agent";

    /// <summary>Per-instance folders (overlay, console log); must be readable by QEMU.</summary>
    public string InstancesDirectory { get; set; } = "/var/lib/compute-agent/instances";

    /// <summary>The gRPC Unix socket for local operators (grpcurl -unix).</summary>
    public string UnixSocketPath { get; set; } = "/run/compute-agent/agent.sock";

    /// <summary>Optional TCP listener, e.g. 0.0.0.0:50051; mutual TLS only (see <see cref="Callers"/>).</summary>
    public string? TcpListen { get; set; }

    /// <summary>Optional Prometheus listener for GET /metrics, e.g. 127.0.0.1:9180; off when empty.</summary>
    public string? MetricsListen { get; set; }

    /// <summary>Serve /metrics over mutual TLS with the <see cref="Callers"/> certificate settings (a client must present a certificate signed by ClientCaPath).</summary>
    public bool MetricsMutualTls { get; set; }

    /// <summary>Glance v2 endpoint, e.g. http://glance.example:9292.</summary>
    public string? ImageServiceUrl { get; set; }

    public int MaxConcurrentBuilds { get; set; } = 10;

    public int ReconcileIntervalSeconds { get; set; } = 60;

    /// <summary>The bound of GracefulStopTimeoutSeconds and of a Stop request's graceful_timeout_seconds.</summary>
    public const int MaxGracefulStopTimeoutSeconds = 3_600;

    public int GracefulStopTimeoutSeconds { get; set; } = 60;

    public bool RestartCrashedGuests { get; set; }

    /// <summary>Seconds a soft-deleted instance is kept before it is deleted (Nova's reclaim_instance_interval); 0: soft delete deletes at once.</summary>
    public int ReclaimInstanceIntervalSeconds { get; set; }

    /// <summary>Base images no instance has used for this long are removed from the cache.</summary>
    public int ImageCacheMaxUnusedHours { get; set; } = 24;

    /// <summary>
    /// The Glance disk_formats a spawn or rebuild may use, comma-separated (qcow2, raw, iso, ami,
    /// vmdk, vdi, vhd, vhdx, ploop); each but qcow2 is converted to qcow2 in the image cache. A
    /// string, not a list: the configuration binder appends a list to its default instead of replacing it.
    /// </summary>
    public string AcceptedDiskFormats { get; set; } = string.Join(", ", ImageCacheOptions.DefaultDiskFormats);

    public Controller.ControllerLinkOptions Controller { get; set; } = new();

    public Callers.CallerOptions Callers { get; set; } = new();
    /// <summary>Nova's force_config_drive: every instance gets a config drive.</summary>
    public bool ForceConfigDrive { get; set; }

    /// <summary>Nova's config_drive_format: iso9660 (a CD-ROM) or vfat (a disk).</summary>
    public string ConfigDriveFormat { get; set; } = "iso9660";

    /// <summary>SMBIOS system entries every guest sees; the defaults are Nova's, which cloud-init recognises as OpenStack.</summary>
    public string SysinfoManufacturer { get; set; } = new SmbiosSystem().Manufacturer;

    public string SysinfoProduct { get; set; } = new SmbiosSystem().Product;

    /// <summary>Null: the agent's own version (so an upgrade shows in the guests without a config change).</summary>
    public string? SysinfoVersion { get; set; }

    public string SysinfoFamily { get; set; } = new SmbiosSystem().Family;
    /// <summary>auto (the journal when systemd connected stdout to it and its socket exists, else the console), journal or console.</summary>
    public string LogTarget { get; set; } = "auto";

    /// <summary>journald's native-protocol socket.</summary>
    public string JournalSocketPath { get; set; } = Journal.JournalSocket.DefaultPath;

    /// <summary>What happens to running guests when the host shuts down: shutdown (ACPI, then destroy after GracefulStopTimeoutSeconds), suspend (managed save) or none.</summary>
    public string OnHostShutdown { get; set; } = "shutdown";

    /// <summary>How long the agent holds the host's shutdown back while the guests stop or save.</summary>
    public int HostShutdownTimeoutSeconds { get; set; } = 300;

    /// <summary>After a host boot, start (or resume) the guests the host's shutdown stopped (or saved).</summary>
    public bool ResumeGuestsOnHostBoot { get; set; } = true;

    /// <summary>The D-Bus system bus (logind); empty: $DBUS_SYSTEM_BUS_ADDRESS, else unix:path=/run/dbus/system_bus_socket.</summary>
    public string? SystemBusAddress { get; set; }

    /// <summary>The kernel's boot id, which tells a host boot from an agent restart.</summary>
    public string BootIdPath { get; set; } = "/proc/sys/kernel/random/boot_id";

    public EngineOptions ToEngineOptions() => new()
    {
        MaxConcurrentBuilds = MaxConcurrentBuilds,
        ReconcileInterval = TimeSpan.FromSeconds(ReconcileIntervalSeconds),
        GracefulStopTimeout = TimeSpan.FromSeconds(GracefulStopTimeoutSeconds),
        RestartCrashedGuests = RestartCrashedGuests,
        ReclaimInstanceInterval = TimeSpan.FromSeconds(ReclaimInstanceIntervalSeconds),
    };

    /// <summary>The image cache's settings: under StateDirectory, the accepted disk formats.</summary>
    public ImageCacheOptions ToImageCacheOptions() => new()
    {
        Directory = Path.Combine(StateDirectory, "_base"),
        AcceptedDiskFormats = DiskFormatList(),
    };

    private string[] DiskFormatList() => AcceptedDiskFormats.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <param name="kvmUsable">Whether libvirt offers kvm domains here (the runtime asks libvirt's domain capabilities).</param>
    public HostSettings ToHostSettings(bool kvmUsable) => new()
    {
        VirtType = HostSettings.ParseVirtType(VirtType, kvmUsable),
        CpuMode = CpuMode switch
        {
            "host-passthrough" => Instances.Model.CpuMode.HostPassthrough,
            "custom" => Instances.Model.CpuMode.Custom,
            "none" => Instances.Model.CpuMode.None,
            _ => Instances.Model.CpuMode.HostModel,
        },
        CpuModel = CpuMode == "custom" ? CpuModels.FirstOrDefault() : null,
        InstancesDirectory = InstancesDirectory,
        ForceConfigDrive = ForceConfigDrive,
        ConfigDriveFormat = ConfigDriveFormat == "vfat" ? Instances.Model.ConfigDriveFormat.Vfat : Instances.Model.ConfigDriveFormat.Iso9660,
        Smbios = new SmbiosSystem { Manufacturer = SysinfoManufacturer, Product = SysinfoProduct, Version = SysinfoVersion ?? new SmbiosSystem().Version, Family = SysinfoFamily },
    };

    /// <summary>Every problem with the settings, each naming its key and what is allowed; empty when they are fine.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!Uri.TryCreate(LibvirtUri, UriKind.Absolute, out _))
        {
            errors.Add($"Agent:LibvirtUri '{LibvirtUri}' is not a URI (e.g. qemu:///system)");
        }

        if (VirtType is not ("kvm" or "qemu" or "auto"))
        {
            errors.Add($"Agent:VirtType '{VirtType}' must be kvm, qemu or auto");
        }

        errors.AddRange(ValidateCpu());
        foreach (var (key, path) in new[] { ("StateDirectory", StateDirectory), ("InstancesDirectory", InstancesDirectory), ("UnixSocketPath", UnixSocketPath), ("JournalSocketPath", JournalSocketPath), ("BootIdPath", BootIdPath) })
        {
            if (string.IsNullOrWhiteSpace(path) || !Path.IsPathFullyQualified(path))
            {
                errors.Add($"Agent:{key} '{path}' must be an absolute path");
            }
        }

        if (ImageServiceUrl is { Length: > 0 } url && !(Uri.TryCreate(url, UriKind.Absolute, out var image) && image.Scheme is "http" or "https"))
        {
            errors.Add($"Agent:ImageServiceUrl '{url}' must be an http(s) URL of the Glance v2 API");
        }

        if (TcpListen is { Length: > 0 } tcp && !System.Net.IPEndPoint.TryParse(tcp, out _))
        {
            errors.Add($"Agent:TcpListen '{tcp}' must be ADDRESS:PORT, e.g. 127.0.0.1:50051");
        }

        errors.AddRange(ValidateMetrics());
        if (ConfigDriveFormat is not ("iso9660" or "vfat"))
        {
            errors.Add($"Agent:ConfigDriveFormat '{ConfigDriveFormat}' must be iso9660 or vfat");
        }

        foreach (var (key, value) in new[] { ("SysinfoManufacturer", SysinfoManufacturer), ("SysinfoProduct", SysinfoProduct), ("SysinfoFamily", SysinfoFamily) })
        {
            if (string.IsNullOrWhiteSpace(value) || value.Length > 255 || value.Any(char.IsControl))
            {
                errors.Add($"Agent:{key} '{value}' must be 1 to 255 printable characters");
            }
        }

        if (SysinfoVersion is not null && (SysinfoVersion.Length > 255 || SysinfoVersion.Any(char.IsControl)))
        {
            errors.Add($"Agent:SysinfoVersion '{SysinfoVersion}' must be at most 255 printable characters");
        }

        if (MaxConcurrentBuilds is < 1 or > 1000)
        {
            errors.Add($"Agent:MaxConcurrentBuilds {MaxConcurrentBuilds} must be between 1 and 1000");
        }

        if (ReconcileIntervalSeconds is < 1 or > 86_400)
        {
            errors.Add($"Agent:ReconcileIntervalSeconds {ReconcileIntervalSeconds} must be between 1 and 86400");
        }

        if (ReclaimInstanceIntervalSeconds < 0)
        {
            errors.Add($"Agent:ReclaimInstanceIntervalSeconds {ReclaimInstanceIntervalSeconds} must be 0 (soft delete deletes at once) or more");
        }

        if (GracefulStopTimeoutSeconds is < 0 or > MaxGracefulStopTimeoutSeconds)
        {
            errors.Add($"Agent:GracefulStopTimeoutSeconds {GracefulStopTimeoutSeconds} must be between 0 and 3600");
        }

        if (ImageCacheMaxUnusedHours is < 1 or > 8_760)
        {
            errors.Add($"Agent:ImageCacheMaxUnusedHours {ImageCacheMaxUnusedHours} must be between 1 and 8760");
        }

        var formats = DiskFormatList();
        if (formats.Length == 0)
        {
            errors.Add($"Agent:AcceptedDiskFormats '{AcceptedDiskFormats}' must name at least one disk format, e.g. \"qcow2, raw, iso\"");
        }

        foreach (var unknown in formats.Where(f => !ImageCacheOptions.KnownDiskFormats.Contains(f, StringComparer.Ordinal)))
        {
            errors.Add($"Agent:AcceptedDiskFormats names '{unknown}', which is not a disk format this host can boot; allowed: {string.Join(", ", ImageCacheOptions.KnownDiskFormats.Order(StringComparer.Ordinal))}");
        }

        errors.AddRange(Controller.Validate());
        errors.AddRange(Callers.Validate(tcpListener: !string.IsNullOrEmpty(TcpListen)));
        if (LogTarget is not ("auto" or "journal" or "console"))
        {
            errors.Add($"Agent:LogTarget '{LogTarget}' must be auto, journal or console");
        }

        if (OnHostShutdown is not ("shutdown" or "suspend" or "none"))
        {
            errors.Add($"Agent:OnHostShutdown '{OnHostShutdown}' must be shutdown, suspend or none");
        }

        if (HostShutdownTimeoutSeconds is < 1 or > 3_600)
        {
            errors.Add($"Agent:HostShutdownTimeoutSeconds {HostShutdownTimeoutSeconds} must be between 1 and 3600");
        }

        if (SystemBusAddress is { Length: > 0 } bus && !bus.Contains(':', StringComparison.Ordinal))
        {
            errors.Add($"Agent:SystemBusAddress '{bus}' is not a D-Bus address (e.g. unix:path=/run/dbus/system_bus_socket)");
        }

        return errors;
    }

    private IEnumerable<string> ValidateMetrics()
    {
        if (string.IsNullOrEmpty(MetricsListen))
        {
            if (MetricsMutualTls)
            {
                yield return "Agent:MetricsMutualTls is only read with Agent:MetricsListen: set the metrics listener's ADDRESS:PORT (e.g. 127.0.0.1:9180) or remove MetricsMutualTls";
            }

            yield break;
        }

        if (!System.Net.IPEndPoint.TryParse(MetricsListen, out var metrics))
        {
            yield return $"Agent:MetricsListen '{MetricsListen}' must be ADDRESS:PORT, e.g. 127.0.0.1:9180";
            yield break;
        }

        if (TcpListen is { Length: > 0 } tcp && System.Net.IPEndPoint.TryParse(tcp, out var grpc) && grpc.Port == metrics.Port && (grpc.Address.Equals(metrics.Address) || grpc.Address.Equals(System.Net.IPAddress.Any) || metrics.Address.Equals(System.Net.IPAddress.Any)))
        {
            yield return $"Agent:MetricsListen '{MetricsListen}' is the address of Agent:TcpListen '{tcp}': give the metrics listener a port of its own, e.g. 9180";
        }

        // With Agent:TcpListen set, the Callers check already names any missing file.
        if (MetricsMutualTls && string.IsNullOrEmpty(TcpListen))
        {
            foreach (var problem in Callers.ValidateCertificateFiles("Agent:MetricsMutualTls serves /metrics only over mutual TLS"))
            {
                yield return problem;
            }
        }
    }

    private IEnumerable<string> ValidateCpu()
    {
        if (CpuMode is not ("host-model" or "host-passthrough" or "custom" or "none"))
        {
            yield return $"Agent:CpuMode '{CpuMode}' must be host-model, host-passthrough, custom or none";
        }
        else if (CpuMode == "custom" && CpuModels.Count == 0)
        {
            yield return "Agent:CpuMode custom needs Agent:CpuModels, e.g. [\"Haswell-noTSX\"] (virsh cpu-models x86_64 lists them)";
        }
        else if (CpuMode != "custom" && CpuModels.Count > 0)
        {
            yield return $"Agent:CpuModels is only read with Agent:CpuMode custom (it is {CpuMode}): remove it or set CpuMode to custom";
        }
        else if (CpuMode == "host-passthrough" && VirtType == "qemu")
        {
            // TCG cannot pass the host CPU through: QEMU would refuse to start every guest.
            yield return "Agent:CpuMode host-passthrough needs kvm, but Agent:VirtType is qemu: use host-model, custom or none";
        }

        foreach (var model in CpuModels.Where(m => m is not { Length: > 0 and <= 64 } || !m.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
        {
            yield return $"Agent:CpuModels '{model}' must be a CPU model name of ASCII letters, digits, '.', '_' and '-' (virsh cpu-models x86_64 lists them)";
        }
    }
}
