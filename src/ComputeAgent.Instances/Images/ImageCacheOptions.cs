namespace ComputeAgent.Instances.Images;

/// <summary>The base-image cache's settings (Nova's [image_cache] and image-size limits).</summary>
public sealed record ImageCacheOptions
{
    /// <summary>Where base images live, e.g. /var/lib/compute-agent/_base; QEMU must be able to reach it.</summary>
    public required string Directory { get; init; }

    /// <summary>The Glance disk_formats this host accepts (the agent's Agent:AcceptedDiskFormats); each is converted to qcow2 unless it is qcow2.</summary>
    public IReadOnlyList<string> AcceptedDiskFormats { get; init; } = DefaultDiskFormats;

    /// <summary>What a host accepts unless configured otherwise: the formats Nova's libvirt driver boots without a conversion tool of its own.</summary>
    public static IReadOnlyList<string> DefaultDiskFormats { get; } = ["qcow2", "raw", "iso"];

    /// <summary>Every disk_format the cache can turn into a qcow2 base image (what AcceptedDiskFormats may name).</summary>
    public static IEnumerable<string> KnownDiskFormats => ImageFormats.Convertible;

    /// <summary>The largest image download (Glance's size) accepted.</summary>
    public long MaxImageBytes { get; init; } = 256L << 30;

    /// <summary>The largest virtual disk size accepted (what the guest would see, and what a raw conversion may write).</summary>
    public long MaxVirtualSizeBytes { get; init; } = 4L << 40;

    /// <summary>Refuse images Glance records no usable checksum for; off only for images registered by location without hashes.</summary>
    public bool RequireChecksum { get; init; } = true;

    /// <summary>How long qemu-img info may take on a downloaded image.</summary>
    public TimeSpan InspectTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long converting one image to qcow2 may take.</summary>
    public TimeSpan ConvertTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// The qemu-img that inspects, checks and converts downloads. Tests name a stand-in that hangs:
    /// the inspect and convert timeouts are otherwise reached only by crafted images.
    /// </summary>
    internal string QemuImgProgram { get; init; } = QemuImg.Program;

    /// <summary>The clock of last-use times.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory) || !Path.IsPathFullyQualified(Directory))
        {
            throw new ArgumentException($"Directory '{Directory}' must be an absolute path", nameof(Directory));
        }

        foreach (var format in AcceptedDiskFormats)
        {
            if (ImageFormats.QemuName(format) is null)
            {
                throw new ArgumentException($"Agent:AcceptedDiskFormats: '{format}' cannot be a disk; allowed: {string.Join(", ", ImageFormats.Convertible)}", nameof(AcceptedDiskFormats));
            }
        }

        if (MaxImageBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxImageBytes), MaxImageBytes, "MaxImageBytes must be positive");
        }

        if (MaxVirtualSizeBytes <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxVirtualSizeBytes), MaxVirtualSizeBytes, "MaxVirtualSizeBytes must be positive");
        }

        if (InspectTimeout <= TimeSpan.Zero || ConvertTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(InspectTimeout), "InspectTimeout and ConvertTimeout must be positive");
        }
    }
}
