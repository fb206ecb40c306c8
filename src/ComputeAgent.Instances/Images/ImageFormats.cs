using System.Collections.Frozen;

namespace ComputeAgent.Instances.Images;

/// <summary>Glance's disk_format names and what qemu-img calls the same formats.</summary>
internal static class ImageFormats
{
    /// <summary>The format of every base image in the cache (the overlays' backing format).</summary>
    public const string Cache = "qcow2";

    // ISO and AMI images are raw bytes to qemu-img; vhd is "vpc", ploop is "parallels".
    // aki/ari (kernel, ramdisk) are not disks and have no entry.
    private static readonly FrozenDictionary<string, string> QemuNames = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["qcow2"] = "qcow2",
        ["raw"] = "raw",
        ["iso"] = "raw",
        ["ami"] = "raw",
        ["vmdk"] = "vmdk",
        ["vdi"] = "vdi",
        ["vhd"] = "vpc",
        ["vhdx"] = "vhdx",
        ["ploop"] = "parallels",
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The disk images the agent can turn into a qcow2 base image.</summary>
    public static IEnumerable<string> Convertible => QemuNames.Keys;

    public static string? QemuName(string diskFormat) => QemuNames.GetValueOrDefault(diskFormat);

    /// <summary>A kernel (aki) or ramdisk (ari) for direct kernel boot: cached as it came, never a disk.</summary>
    public static bool IsBootFile(string diskFormat) => diskFormat is "aki" or "ari";

    // Nova's allow-list: the vmdk kinds that keep their data in the one file (no extents elsewhere).
    public static bool IsSelfContainedVmdk(string? createType) => createType is "monolithicSparse" or "streamOptimized";
}
