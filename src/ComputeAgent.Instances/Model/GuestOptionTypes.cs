namespace ComputeAgent.Instances.Model;

/// <summary>hw:cpu_policy / hw_cpu_policy.</summary>
public enum CpuPolicy
{
    Shared,
    Dedicated,
}

/// <summary>hw:watchdog_action / hw_watchdog_action; Disabled means no watchdog device.</summary>
public enum WatchdogAction
{
    Disabled,
    Pause,
    Poweroff,
    Reset,
    None,
}

/// <summary>hw:pointer_model / hw_pointer_model: a USB tablet (absolute pointer for VNC) or the implicit PS/2 mouse.</summary>
public enum PointerModel
{
    UsbTablet,
    Ps2Mouse,
}

/// <summary>hw_disk_bus / hw_cdrom_bus and a block device's bus.</summary>
public enum DiskBus
{
    Virtio,
    Scsi,
    Ide,
    Sata,
    Usb,
}

/// <summary>hw_scsi_model: the SCSI controller disks on the scsi bus hang off.</summary>
public enum ScsiModel
{
    VirtioScsi,
    LsiLogic,
}

/// <summary>hw_vif_model and a port's model.</summary>
public enum VifModel
{
    Virtio,
    E1000,
    E1000e,
    Rtl8139,
    Ne2kPci,
    Pcnet,
}

/// <summary>hw_video_model.</summary>
public enum VideoModel
{
    Vga,
    Cirrus,
    Virtio,
    Qxl,
    None,
}

/// <summary>hw_firmware_type.</summary>
public enum FirmwareType
{
    Bios,
    Uefi,
}

/// <summary>os_type: decides the guest clock and the Hyper-V enlightenments.</summary>
public enum OsType
{
    Linux,
    Windows,
}

/// <summary>img_config_drive.</summary>
public enum ConfigDriveRequirement
{
    Optional,
    Mandatory,
}

/// <summary>How guest memory is backed: hw:mem_page_size / hw_mem_page_size.</summary>
public enum MemPageSizeKind
{
    Small,
    Large,
    Any,
    Explicit,
}

/// <summary>A page size request; <see cref="SizeKiB"/> is set only for <see cref="MemPageSizeKind.Explicit"/>.</summary>
public readonly record struct MemPageSize(MemPageSizeKind Kind, long SizeKiB = 0)
{
    public static MemPageSize Parse(string field, string value)
    {
        var text = value.Trim().ToLowerInvariant();
        switch (text)
        {
            case "small":
                return new MemPageSize(MemPageSizeKind.Small);
            case "large":
                return new MemPageSize(MemPageSizeKind.Large);
            case "any":
                return new MemPageSize(MemPageSizeKind.Any);
        }

        // Nova accepts a size with an optional unit (KiB when none): 2048, 2MB, 1GB, 1G.
        var digits = 0;
        while (digits < text.Length && char.IsAsciiDigit(text[digits]))
        {
            digits++;
        }

        var unit = text[digits..].Trim() switch
        {
            "" or "k" or "kb" or "kib" => 1L,
            "m" or "mb" or "mib" => 1024L,
            "g" or "gb" or "gib" => 1024L * 1024,
            _ => 0L,
        };
        if (digits == 0 || unit == 0 || !long.TryParse(text.AsSpan(0, digits), out var number) || number <= 0 || number > 16L * 1024 * 1024)
        {
            throw new InvalidInstanceSpecException(field, value, "small, large, any, or a page size such as 4, 2048, 2MB, 1GB");
        }

        var size = number * unit;
        return size == 4 ? new MemPageSize(MemPageSizeKind.Small) : new MemPageSize(MemPageSizeKind.Explicit, size);
    }

    public override string ToString() => Kind == MemPageSizeKind.Explicit ? $"{SizeKiB}KiB" : Kind.ToString().ToLowerInvariant();
}

/// <summary>Preferred and maximum guest CPU topology; null where not set.</summary>
public sealed record CpuTopologyRequest(int? Sockets, int? Cores, int? Threads, int? MaxSockets, int? MaxCores, int? MaxThreads)
{
    public static readonly CpuTopologyRequest Unset = new(null, null, null, null, null, null);

    public bool HasPreference => Sockets is not null || Cores is not null || Threads is not null;
}

/// <summary>The guest's CPU topology as written into &lt;cpu&gt;&lt;topology&gt;.</summary>
public readonly record struct CpuTopology(int Sockets, int Cores, int Threads);

/// <summary>Disk I/O limits (quota:disk_* on the flavor, qos_specs on a volume), bytes or IOPS per second.</summary>
public sealed record IoTune(
    long? ReadBytesSec = null,
    long? WriteBytesSec = null,
    long? TotalBytesSec = null,
    long? ReadIopsSec = null,
    long? WriteIopsSec = null,
    long? TotalIopsSec = null)
{
    public static readonly IoTune None = new();

    public bool IsEmpty => this == None;
}

/// <summary>One direction of a &lt;bandwidth&gt;: average and peak in KB/s, burst in KB.</summary>
public sealed record BandwidthLimit(long Average, long? Peak = null, long? Burst = null);

/// <summary>quota:vif_{inbound,outbound}_* or a port's own limits.</summary>
public sealed record Bandwidth(BandwidthLimit? Inbound, BandwidthLimit? Outbound)
{
    public static readonly Bandwidth None = new(null, null);

    public bool IsEmpty => Inbound is null && Outbound is null;
}
