namespace ComputeAgent.Instances.Model;

/// <summary>
/// The Glance image properties the agent acts on, parsed. Unknown properties are ignored: images
/// carry arbitrary user metadata, and Nova ignores what it does not know too.
/// </summary>
public sealed record ImageProperties
{
    public static readonly ImageProperties Empty = new();

    /// <summary>Every property this parser reads, for the image properties table of src/README.md.</summary>
    public static readonly IReadOnlyList<string> SupportedKeys =
    [
        "hw_disk_bus", "hw_cdrom_bus", "hw_scsi_model", "hw_vif_model", "hw_machine_type", "hw_firmware_type",
        "hw_video_model", "hw_video_ram", "hw_qemu_guest_agent", "hw_rng_model", "hw_pointer_model", "hw_serial_port_count",
        "hw_watchdog_action", "hw_boot_menu", "hw_pmu", "hw_cpu_policy",
        "hw_cpu_sockets", "hw_cpu_cores", "hw_cpu_threads", "hw_cpu_max_sockets", "hw_cpu_max_cores", "hw_cpu_max_threads",
        "hw_mem_page_size", "hw_numa_nodes", "os_type", "os_distro", "kernel_id", "ramdisk_id", "os_command_line", "img_config_drive",
    ];

    public DiskBus? DiskBus { get; init; }

    public DiskBus? CdromBus { get; init; }

    public ScsiModel? ScsiModel { get; init; }

    public VifModel? VifModel { get; init; }

    public string? MachineType { get; init; }

    public FirmwareType FirmwareType { get; init; } = FirmwareType.Bios;

    public VideoModel? VideoModel { get; init; }

    /// <summary>hw_video_ram in MiB; allowed up to the flavor's hw_video:ram_max_mb.</summary>
    public int? VideoRamMiB { get; init; }

    public bool QemuGuestAgent { get; init; }

    public PointerModel? PointerModel { get; init; }

    public int? SerialPortCount { get; init; }

    public WatchdogAction? WatchdogAction { get; init; }

    public bool? BootMenu { get; init; }

    public bool? Pmu { get; init; }

    public CpuPolicy? CpuPolicy { get; init; }

    public CpuTopologyRequest Topology { get; init; } = CpuTopologyRequest.Unset;

    public MemPageSize? MemPageSize { get; init; }

    public int? NumaNodes { get; init; }

    public OsType OsType { get; init; } = OsType.Linux;

    public string? OsDistro { get; init; }

    public string? KernelId { get; init; }

    public string? RamdiskId { get; init; }

    public string? OsCommandLine { get; init; }

    public ConfigDriveRequirement ConfigDrive { get; init; } = ConfigDriveRequirement.Optional;

    public static ImageProperties Parse(IReadOnlyDictionary<string, string>? properties)
    {
        if (properties is null || properties.Count == 0)
        {
            return Empty;
        }

        string? Get(string key) => properties.TryGetValue(key, out var v) ? v : null;
        static string F(string key) => $"image.properties[{key}]";
        int? Int(string key, int min, int max) => Get(key) is { } v ? SpecValues.ParseInt(F(key), v, min, max) : null;
        bool? Bool(string key) => Get(key) is { } v ? SpecValues.ParseBool(F(key), v) : null;
        T? Map<T>(string key, Func<string, string, T> parse)
            where T : struct => Get(key) is { } v ? parse(F(key), v) : null;

        // Nova's only RNG model; the RNG itself is there by default (the flavor's hw_rng:allowed turns it off).
        if (Get("hw_rng_model") is { } rng && rng != "virtio")
        {
            throw new InvalidInstanceSpecException(F("hw_rng_model"), rng, "virtio");
        }

        return new ImageProperties
        {
            DiskBus = Map("hw_disk_bus", ParseDiskBus),
            CdromBus = Map("hw_cdrom_bus", ParseCdromBus),
            ScsiModel = Map("hw_scsi_model", ParseScsiModel),
            VifModel = Map("hw_vif_model", ParseVifModel),
            MachineType = Get("hw_machine_type") is { } machine ? SpecValues.CheckToken(F("hw_machine_type"), machine) : null,
            FirmwareType = Map("hw_firmware_type", ParseFirmwareType) ?? FirmwareType.Bios,
            VideoModel = Map("hw_video_model", ParseVideoModel),
            VideoRamMiB = Int("hw_video_ram", 1, 4096),
            QemuGuestAgent = Bool("hw_qemu_guest_agent") ?? false,
            PointerModel = Map("hw_pointer_model", FlavorExtraSpecs.ParsePointerModel),
            SerialPortCount = Int("hw_serial_port_count", 1, 8),
            WatchdogAction = Map("hw_watchdog_action", FlavorExtraSpecs.ParseWatchdogAction),
            BootMenu = Bool("hw_boot_menu"),
            Pmu = Bool("hw_pmu"),
            CpuPolicy = Map("hw_cpu_policy", FlavorExtraSpecs.ParseCpuPolicy),
            Topology = new CpuTopologyRequest(
                Int("hw_cpu_sockets", 1, Flavor.MaxVcpus), Int("hw_cpu_cores", 1, Flavor.MaxVcpus), Int("hw_cpu_threads", 1, Flavor.MaxVcpus),
                Int("hw_cpu_max_sockets", 1, Flavor.MaxVcpus), Int("hw_cpu_max_cores", 1, Flavor.MaxVcpus), Int("hw_cpu_max_threads", 1, Flavor.MaxVcpus)),
            MemPageSize = Get("hw_mem_page_size") is { } page ? Model.MemPageSize.Parse(F("hw_mem_page_size"), page) : null,
            NumaNodes = Int("hw_numa_nodes", 1, 64),
            OsType = Map("os_type", ParseOsType) ?? OsType.Linux,
            OsDistro = Get("os_distro") is { } distro ? SpecValues.CheckToken(F("os_distro"), distro) : null,
            KernelId = Get("kernel_id") is { } kernel ? SpecValues.CheckText(F("kernel_id"), kernel) : null,
            RamdiskId = Get("ramdisk_id") is { } ramdisk ? SpecValues.CheckText(F("ramdisk_id"), ramdisk) : null,

            // x86's COMMAND_LINE_SIZE is 2048 bytes.
            OsCommandLine = Get("os_command_line") is { } cmdline ? SpecValues.CheckText(F("os_command_line"), cmdline, 2047, allowEmpty: true) : null,
            ConfigDrive = Map("img_config_drive", ParseConfigDrive) ?? ConfigDriveRequirement.Optional,
        };
    }

    internal static DiskBus ParseDiskBus(string field, string value) => value switch
    {
        "virtio" => Model.DiskBus.Virtio,
        "scsi" => Model.DiskBus.Scsi,
        "ide" => Model.DiskBus.Ide,
        "sata" => Model.DiskBus.Sata,
        "usb" => Model.DiskBus.Usb,
        _ => throw new InvalidInstanceSpecException(field, value, "virtio, scsi, ide, sata, usb"),
    };

    // QEMU has no virtio CD-ROM: a CD-ROM sits on an emulated bus.
    private static DiskBus ParseCdromBus(string field, string value) => value switch
    {
        "scsi" => Model.DiskBus.Scsi,
        "ide" => Model.DiskBus.Ide,
        "sata" => Model.DiskBus.Sata,
        "usb" => Model.DiskBus.Usb,
        _ => throw new InvalidInstanceSpecException(field, value, "ide, sata, scsi, usb"),
    };

    private static ScsiModel ParseScsiModel(string field, string value) => value switch
    {
        "virtio-scsi" => Model.ScsiModel.VirtioScsi,
        "lsilogic" => Model.ScsiModel.LsiLogic,
        _ => throw new InvalidInstanceSpecException(field, value, "virtio-scsi, lsilogic"),
    };

    public static VifModel ParseVifModel(string field, string value) => value switch
    {
        "virtio" => Model.VifModel.Virtio,
        "e1000" => Model.VifModel.E1000,
        "e1000e" => Model.VifModel.E1000e,
        "rtl8139" => Model.VifModel.Rtl8139,
        "ne2k_pci" => Model.VifModel.Ne2kPci,
        "pcnet" => Model.VifModel.Pcnet,
        _ => throw new InvalidInstanceSpecException(field, value, "virtio, e1000, e1000e, rtl8139, ne2k_pci, pcnet"),
    };

    private static FirmwareType ParseFirmwareType(string field, string value) => value switch
    {
        "bios" => Model.FirmwareType.Bios,
        "uefi" => Model.FirmwareType.Uefi,
        _ => throw new InvalidInstanceSpecException(field, value, "bios, uefi"),
    };

    private static VideoModel ParseVideoModel(string field, string value) => value switch
    {
        "vga" => Model.VideoModel.Vga,
        "cirrus" => Model.VideoModel.Cirrus,
        "virtio" => Model.VideoModel.Virtio,
        "qxl" => Model.VideoModel.Qxl,
        "none" => Model.VideoModel.None,
        _ => throw new InvalidInstanceSpecException(field, value, "vga, cirrus, virtio, qxl, none"),
    };

    private static OsType ParseOsType(string field, string value) => value switch
    {
        "linux" => Model.OsType.Linux,
        "windows" => Model.OsType.Windows,
        _ => throw new InvalidInstanceSpecException(field, value, "linux, windows"),
    };

    private static ConfigDriveRequirement ParseConfigDrive(string field, string value) => value switch
    {
        "optional" => ConfigDriveRequirement.Optional,
        "mandatory" => ConfigDriveRequirement.Mandatory,
        _ => throw new InvalidInstanceSpecException(field, value, "optional, mandatory"),
    };
}
