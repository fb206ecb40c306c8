namespace ComputeAgent.Instances.Model;

/// <summary>
/// A Glance image's metadata as the controller sends it: the fixed fields plus the free-form
/// properties (string dictionary, as Glance has them); <see cref="ImageProperties.Parse"/> reads
/// the ones that shape the guest.
/// </summary>
public sealed record ImageMeta(
    string Id,
    string DiskFormat = "qcow2",
    string ContainerFormat = "bare",
    int MinDiskGiB = 0,
    int MinRamMiB = 0,
    IReadOnlyDictionary<string, string>? Properties = null,
    string? Name = null)
{
    public static readonly IReadOnlyList<string> DiskFormats = ["raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "iso", "ploop", "ami", "aki", "ari"];

    public static readonly IReadOnlyList<string> ContainerFormats = ["bare", "ovf", "ova", "ami", "aki", "ari", "docker", "compressed"];

    /// <summary>An ISO image boots as a CD-ROM (on hw_cdrom_bus), as Nova boots it.</summary>
    public bool IsIso => DiskFormat == "iso";

    /// <summary>Refuses fields that are malformed on their own; the flavor-dependent checks (min_disk, min_ram) are the builder's.</summary>
    public void Validate()
    {
        SpecValues.CheckText("image.id", Id);
        if (Name is not null)
        {
            SpecValues.CheckText("image.name", Name);
        }

        if (!DiskFormats.Contains(DiskFormat))
        {
            throw new InvalidInstanceSpecException("image.disk_format", DiskFormat, string.Join(", ", DiskFormats));
        }

        if (!ContainerFormats.Contains(ContainerFormat))
        {
            throw new InvalidInstanceSpecException("image.container_format", ContainerFormat, string.Join(", ", ContainerFormats));
        }

        if (MinDiskGiB < 0)
        {
            throw new InvalidInstanceSpecException("image.min_disk", MinDiskGiB.ToString(System.Globalization.CultureInfo.InvariantCulture), "0 or more GiB");
        }

        if (MinRamMiB < 0)
        {
            throw new InvalidInstanceSpecException("image.min_ram", MinRamMiB.ToString(System.Globalization.CultureInfo.InvariantCulture), "0 or more MiB");
        }
    }
}
