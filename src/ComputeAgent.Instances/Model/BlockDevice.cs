namespace ComputeAgent.Instances.Model;

/// <summary>What a block device is to the instance.</summary>
public enum BlockDeviceRole
{
    /// <summary>The per-instance overlay on the base image (or the root volume when boot-from-volume).</summary>
    Root,
    Ephemeral,
    Swap,
    ConfigDrive,
    Volume,
}

/// <summary>How the guest sees the device.</summary>
public enum DiskDeviceType
{
    Disk,
    Cdrom,
}

/// <summary>libvirt's &lt;driver cache=…&gt;.</summary>
public enum DiskCacheMode
{
    None,
    Writeback,
    Writethrough,
    DirectSync,
    Unsafe,
}

/// <summary>libvirt's &lt;driver discard=…&gt;.</summary>
public enum DiscardMode
{
    Ignore,
    Unmap,
}

/// <summary>The format of a file-backed disk as QEMU opens it.</summary>
public enum DiskFormat
{
    Qcow2,
    Raw,
}

/// <summary>Where a disk's bytes are.</summary>
public abstract record DiskSource;

/// <summary>A local file: overlays, ephemeral and swap disks, config drives, Cinder "local"/"file" volumes, mounted NFS volumes.</summary>
public sealed record FileDiskSource(string Path, DiskFormat Format) : DiskSource;

/// <summary>A host block device: an iSCSI LUN once the initiator has logged in (/dev/disk/by-path/…).</summary>
public sealed record BlockDiskSource(string DevicePath) : DiskSource;

/// <summary>A Ceph RBD image QEMU reaches itself (no host mapping).</summary>
public sealed record RbdDiskSource(string Pool, string Image, IReadOnlyList<RbdMonitor> Monitors, string? AuthUsername, Guid? SecretUuid) : DiskSource;

public sealed record RbdMonitor(string Host, int Port);

/// <summary>A disk of the instance: its role, where its bytes are, and how the guest sees it.</summary>
public sealed record BlockDevice(BlockDeviceRole Role, DiskSource Source)
{
    public DiskDeviceType DeviceType { get; init; } = DiskDeviceType.Disk;

    /// <summary>The bus; null takes the image's hw_disk_bus (disks) or hw_cdrom_bus (CD-ROMs).</summary>
    public DiskBus? Bus { get; init; }

    /// <summary>Nova's boot_index: 0 boots first; null is not bootable.</summary>
    public int? BootIndex { get; init; }

    /// <summary>Null takes the host's default (none when O_DIRECT works on the instance directory, else writeback).</summary>
    public DiskCacheMode? Cache { get; init; }

    /// <summary>Null takes the host's default.</summary>
    public DiscardMode? Discard { get; init; }

    /// <summary>The serial the guest sees (the Cinder volume id for volumes).</summary>
    public string? Serial { get; init; }

    public bool ReadOnly { get; init; }

    /// <summary>Volume QoS (Cinder qos_specs); local disks take the flavor's quota:disk_*.</summary>
    public IoTune? IoTune { get; init; }

    /// <summary>A config drive: iso9660 is a CD-ROM, vfat a disk (Nova's config_drive_format).</summary>
    public static BlockDevice ConfigDrive(string path, ConfigDriveFormat format) =>
        new(BlockDeviceRole.ConfigDrive, new FileDiskSource(path, DiskFormat.Raw))
        {
            DeviceType = format == ConfigDriveFormat.Iso9660 ? DiskDeviceType.Cdrom : DiskDeviceType.Disk,
            ReadOnly = format == ConfigDriveFormat.Iso9660,
        };

    public void Validate(int index)
    {
        var field = $"block_devices[{index}]";
        switch (Source)
        {
            case FileDiskSource file:
                SpecValues.CheckPath(field + ".path", file.Path);
                break;
            case BlockDiskSource block:
                SpecValues.CheckPath(field + ".device_path", block.DevicePath);
                if (!block.DevicePath.StartsWith("/dev/", StringComparison.Ordinal))
                {
                    throw new InvalidInstanceSpecException(field + ".device_path", block.DevicePath, "a path under /dev/");
                }

                break;
            case RbdDiskSource rbd:
                SpecValues.CheckToken(field + ".pool", rbd.Pool, 128);
                SpecValues.CheckToken(field + ".name", rbd.Image, 255);
                if (rbd.Monitors.Count == 0)
                {
                    throw new InvalidInstanceSpecException(field + ".hosts", string.Empty, "at least one Ceph monitor");
                }

                for (var i = 0; i < rbd.Monitors.Count; i++)
                {
                    SpecValues.CheckToken($"{field}.hosts[{i}]", rbd.Monitors[i].Host, 253, "._-:[]");
                    if (rbd.Monitors[i].Port is < 1 or > 65535)
                    {
                        throw new InvalidInstanceSpecException($"{field}.ports[{i}]", rbd.Monitors[i].Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "1 to 65535");
                    }
                }

                if (rbd.AuthUsername is not null)
                {
                    SpecValues.CheckToken(field + ".auth_username", rbd.AuthUsername, 128);
                    if (rbd.SecretUuid is null)
                    {
                        throw new InvalidInstanceSpecException(field + ".secret_uuid", null, "the libvirt secret's UUID whenever auth_username is set");
                    }
                }

                break;
            default:
                throw new InvalidInstanceSpecException(field + ".source", Source?.GetType().Name, "a file, block device or rbd source");
        }

        if (Serial is not null)
        {
            SpecValues.CheckToken(field + ".serial", Serial, 64);
        }

        if (BootIndex is < 0 or > 255)
        {
            throw new InvalidInstanceSpecException(field + ".boot_index", BootIndex.Value.ToString(System.Globalization.CultureInfo.InvariantCulture), "0 to 255, or none");
        }

        if (DeviceType == DiskDeviceType.Cdrom && Bus == DiskBus.Virtio)
        {
            throw new InvalidInstanceSpecException(field + ".disk_bus", "virtio", "ide, sata, scsi, usb for a CD-ROM");
        }
    }
}

/// <summary>Nova's config_drive_format.</summary>
public enum ConfigDriveFormat
{
    Iso9660,
    Vfat,
}
