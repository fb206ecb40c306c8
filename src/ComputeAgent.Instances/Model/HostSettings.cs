namespace ComputeAgent.Instances.Model;

/// <summary>The libvirt domain type: kvm needs /dev/kvm, qemu is TCG emulation.</summary>
public enum VirtType
{
    Kvm,
    Qemu,
}

/// <summary>libvirt's &lt;cpu mode&gt;, Nova's [libvirt]cpu_mode; None writes no CPU model (QEMU's default).</summary>
public enum CpuMode
{
    None,
    HostPassthrough,
    HostModel,
    Custom,
}

/// <summary>
/// What the host contributes to every domain: configuration and probe results, decided before the
/// builder runs (the builder itself never touches the host).
/// </summary>
public sealed record HostSettings
{
    public VirtType VirtType { get; init; } = VirtType.Kvm;

    public CpuMode CpuMode { get; init; } = CpuMode.HostModel;

    /// <summary>The named CPU model for <see cref="CpuMode.Custom"/>.</summary>
    public string? CpuModel { get; init; }

    /// <summary>The machine type when the image sets no hw_machine_type.</summary>
    public string DefaultMachineType { get; init; } = "pc";

    /// <summary>Per-instance directories live here: &lt;dir&gt;/&lt;uuid&gt;/console.log.</summary>
    public string InstancesDirectory { get; init; } = "/var/lib/compute-agent/instances";

    /// <summary>The probe result: O_DIRECT opens work on the instance directory, so disks can bypass the host page cache.</summary>
    public bool DirectIoSupported { get; init; } = true;

    public DiscardMode DefaultDiscard { get; init; } = DiscardMode.Ignore;

    /// <summary>Host CPUs instances with hw:cpu_policy=dedicated may be pinned to (Nova's cpu_dedicated_set).</summary>
    public IReadOnlyList<int> DedicatedCpuSet { get; init; } = [];

    /// <summary>Host CPUs shared instances float on (Nova's cpu_shared_set); empty: all.</summary>
    public IReadOnlyList<int> SharedCpuSet { get; init; } = [];

    /// <summary>The huge page size hw:mem_page_size=large and any use.</summary>
    public long DefaultHugePageSizeKiB { get; init; } = 2048;

    /// <summary>The huge page sizes the host has reserved; hw:mem_page_size=any uses huge pages only when there are some.</summary>
    public IReadOnlyList<long> HugePageSizesKiB { get; init; } = [];

    public string UefiLoaderPath { get; init; } = "/usr/share/OVMF/OVMF_CODE_4M.fd";

    public string UefiNvramTemplatePath { get; init; } = "/usr/share/OVMF/OVMF_VARS_4M.fd";

    public string RngSourcePath { get; init; } = "/dev/urandom";

    /// <summary>Nova's [DEFAULT]pointer_model: a USB tablet makes the VNC pointer absolute.</summary>
    public PointerModel DefaultPointerModel { get; init; } = PointerModel.UsbTablet;

    public string NfsMountPointBase { get; init; } = "/var/lib/compute-agent/mnt";

    /// <summary>Nova's force_config_drive: every instance gets a config drive, asked for or not.</summary>
    public bool ForceConfigDrive { get; init; }

    /// <summary>Nova's config_drive_format: iso9660 (a CD-ROM) or vfat (a disk, for guests that must write to it).</summary>
    public ConfigDriveFormat ConfigDriveFormat { get; init; } = ConfigDriveFormat.Iso9660;

    /// <summary>
    /// What the guest reads from SMBIOS (dmidecode). The defaults are Nova's, so cloud-init's
    /// OpenStack data source recognises the platform (product name "OpenStack Nova").
    /// </summary>
    public SmbiosSystem Smbios { get; init; } = new();

    /// <summary>The serial console log of one instance (written by virtlogd, read by the console-log API).</summary>
    public string ConsoleLogPath(Guid uuid) => Path.Combine(InstancesDirectory, uuid.ToString(), "console.log");

    /// <summary>The libvirt domain name of an instance.</summary>
    public static string DomainName(Guid uuid) => "instance-" + uuid.ToString();

    /// <summary>virt_type=auto: KVM when the host has a usable /dev/kvm (a probe result), else TCG.</summary>
    public static VirtType ParseVirtType(string setting, bool kvmUsable) => setting switch
    {
        "kvm" => VirtType.Kvm,
        "qemu" => VirtType.Qemu,
        "auto" => kvmUsable ? VirtType.Kvm : VirtType.Qemu,
        _ => throw new InvalidInstanceSpecException("host.virt_type", setting, "kvm, qemu, auto"),
    };

    /// <summary>Cache mode for disks that do not choose one (Nova: none when O_DIRECT works, else writeback).</summary>
    public DiskCacheMode DefaultCacheMode => DirectIoSupported ? DiskCacheMode.None : DiskCacheMode.Writeback;

    public void Validate()
    {
        SpecValues.CheckToken("host.machine_type", DefaultMachineType);
        SpecValues.CheckPath("host.instances_path", InstancesDirectory);
        SpecValues.CheckPath("host.uefi_loader", UefiLoaderPath);
        SpecValues.CheckPath("host.uefi_nvram_template", UefiNvramTemplatePath);
        SpecValues.CheckPath("host.rng_dev_path", RngSourcePath);
        SpecValues.CheckText("host.sysinfo_manufacturer", Smbios.Manufacturer);
        SpecValues.CheckText("host.sysinfo_product", Smbios.Product);
        SpecValues.CheckText("host.sysinfo_version", Smbios.Version, allowEmpty: true);
        SpecValues.CheckText("host.sysinfo_family", Smbios.Family);
        if (CpuMode == CpuMode.Custom)
        {
            SpecValues.CheckToken("host.cpu_model", CpuModel);
        }
        else if (CpuModel is not null)
        {
            throw new InvalidInstanceSpecException("host.cpu_model", CpuModel, "no model unless cpu_mode is custom");
        }

        if (CpuMode == CpuMode.HostPassthrough && VirtType == VirtType.Qemu)
        {
            // TCG cannot pass the host CPU through; QEMU would refuse to start every guest.
            throw new InvalidInstanceSpecException("host.cpu_mode", "host-passthrough", "host-model, custom or none with virt_type qemu");
        }
    }
}

/// <summary>The SMBIOS system entries every guest gets (serial and uuid are the instance's own).</summary>
public sealed record SmbiosSystem
{
    public string Manufacturer { get; init; } = "OpenStack Foundation";

    /// <summary>cloud-init's ds-identify and DataSourceOpenStack accept "OpenStack Nova" or "OpenStack Compute".</summary>
    public string Product { get; init; } = "OpenStack Nova";

    public string Version { get; init; } = typeof(SmbiosSystem).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public string Family { get; init; } = "Virtual Machine";
}
