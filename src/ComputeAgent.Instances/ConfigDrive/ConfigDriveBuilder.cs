using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.ConfigDrive;

/// <summary>
/// Writes an instance's config drive, <c>disk.config</c> in its own directory (Nova's
/// nova/virt/configdrive.py): ISO 9660 with Joliet and Rock Ridge, volume label <c>config-2</c>,
/// made by xorriso; or a 64 MiB vfat image (mkfs.vfat + mcopy, no mount). The files are staged in
/// a folder inside the instance directory and removed again; nothing is written anywhere else.
/// Spawn calls it during BLOCK_DEVICE_MAPPING; a rebuild calls it again with the new spec.
/// </summary>
public sealed class ConfigDriveBuilder
{
    public const string FileName = "disk.config";
    public const string VolumeLabel = "config-2";

    private const string StagingName = "config-drive.staging";
    private const long VfatSizeBytes = 64L * 1024 * 1024;

    public ConfigDriveBuilder(ConfigDriveFormat format)
    {
        Format = format;
    }

    public ConfigDriveFormat Format { get; }

    /// <summary>Where the drive of the instance whose directory is <paramref name="instanceDirectory"/> lives.</summary>
    public static string PathIn(string instanceDirectory) => Path.Combine(instanceDirectory, FileName);

    /// <summary>
    /// Writes (or replaces) <c>disk.config</c> in <paramref name="instanceDirectory"/> from the spec;
    /// on failure the previous drive, if any, is left as it was and no staging file remains.
    /// </summary>
    /// <returns>The drive's path.</returns>
    public async Task<string> BuildAsync(InstanceSpec spec, string instanceDirectory, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentException.ThrowIfNullOrEmpty(instanceDirectory);
        spec.Guest.Validate();
        var files = ConfigDriveContent.For(spec);
        var staging = Path.Combine(instanceDirectory, StagingName);
        var target = PathIn(instanceDirectory);
        var partial = target + ".partial";
        try
        {
            DeleteStaging(staging, partial);
            var root = Directory.CreateDirectory(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute).FullName;
            foreach (var file in files)
            {
                var path = Path.GetFullPath(Path.Combine(root, file.Path));

                // The paths are ours, but the rule stands: nothing leaves the staging folder.
                if (!path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"config drive path {file.Path} leaves the staging folder");
                }

                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await File.WriteAllBytesAsync(path, file.Bytes, cancellationToken).ConfigureAwait(false);
            }

            if (Format == ConfigDriveFormat.Iso9660)
            {
                await HostTool.RunAsync(
                    "xorriso",
                    ["-as", "mkisofs", "-o", partial, "-quiet", "-J", "-r", "-V", VolumeLabel, "-publisher", "compute-agent", root],
                    "xorriso",
                    cancellationToken,
                    label: "xorriso (config drive)").ConfigureAwait(false);
            }
            else
            {
                await using (var image = new FileStream(partial, FileMode.CreateNew, FileAccess.Write))
                {
                    image.SetLength(VfatSizeBytes);
                }

                await HostTool.RunAsync("mkfs.vfat", ["-n", VolumeLabel, partial], "dosfstools", cancellationToken, label: "mkfs.vfat (config drive)").ConfigureAwait(false);
                await HostTool.RunAsync(
                    "mcopy",
                    ["-s", "-i", partial, Path.Combine(root, "openstack"), Path.Combine(root, "ec2"), "::"],
                    "mtools",
                    cancellationToken,
                    new Dictionary<string, string> { ["MTOOLS_SKIP_CHECK"] = "1" },
                    label: "mcopy (config drive)").ConfigureAwait(false);
            }

            // It holds the admin password and user data: owner only. libvirt's dynamic ownership hands it to QEMU while the guest runs.
            File.SetUnixFileMode(partial, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.Move(partial, target, overwrite: true);
            return target;
        }
        finally
        {
            DeleteStaging(staging, partial);
        }
    }

    private static void DeleteStaging(string staging, string partial)
    {
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }

        File.Delete(partial);
    }
}
