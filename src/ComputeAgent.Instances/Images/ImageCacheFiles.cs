using System.Text.Json;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// The cache directory's layout: <c>{id}</c> (the qcow2 base image), <c>{id}.info</c> (its
/// sidecar) and <c>.tmp/</c> (downloads and conversions in progress). An image exists once its
/// file is renamed into place, after its sidecar; so a crash leaves only temp files and sidecars
/// without an image, and <see cref="Prepare"/> removes both.
/// </summary>
internal sealed class ImageCacheFiles
{
    /// <summary>QEMU runs as libvirt-qemu, not as the agent: it must be able to read base images and reach them.</summary>
    public const UnixFileMode ImageMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    public const UnixFileMode DirectoryMode = ImageMode | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    private const string InfoSuffix = ".info";
    private const UnixFileMode TempDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        IgnoreReadOnlyProperties = true,
        WriteIndented = true,
    };

    public ImageCacheFiles(string directory)
    {
        Directory = Path.GetFullPath(directory);
        TempDirectory = Path.Combine(Directory, ".tmp");
    }

    public string Directory { get; }

    public string TempDirectory { get; }

    public string ImagePath(string imageId) => Path.Combine(Directory, imageId);

    public string InfoPath(string imageId) => ImagePath(imageId) + InfoSuffix;

    /// <summary>A fresh temp file name: concurrent or abandoned attempts never share one.</summary>
    public string NewTempPath(string imageId, string what) => Path.Combine(TempDirectory, $"{imageId}.{Guid.NewGuid():N}.{what}");

    /// <summary>Creates the directories (0755, so QEMU can reach the images) and removes what a crash left; returns how many files that was.</summary>
    public int Prepare()
    {
        System.IO.Directory.CreateDirectory(Directory);
        File.SetUnixFileMode(Directory, DirectoryMode);
        System.IO.Directory.CreateDirectory(TempDirectory);
        File.SetUnixFileMode(TempDirectory, TempDirectoryMode);
        var removed = 0;
        foreach (var leftover in System.IO.Directory.EnumerateFileSystemEntries(TempDirectory))
        {
            if (System.IO.Directory.Exists(leftover))
            {
                System.IO.Directory.Delete(leftover, recursive: true);
            }
            else
            {
                File.Delete(leftover);
            }

            removed++;
        }

        foreach (var info in System.IO.Directory.EnumerateFiles(Directory, "*" + InfoSuffix))
        {
            if (!File.Exists(info[..^InfoSuffix.Length]))
            {
                File.Delete(info);
                removed++;
            }
        }

        return removed;
    }

    public bool IsCached(string imageId) => File.Exists(ImagePath(imageId)) && File.Exists(InfoPath(imageId));

    /// <summary>The image's sidecar, or null when the image is not (completely) in the cache.</summary>
    public CacheEntry? TryRead(string imageId)
    {
        if (!File.Exists(ImagePath(imageId)))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<CacheEntry>(File.ReadAllBytes(InfoPath(imageId)), Json);
        }
        catch (Exception e) when (e is IOException or JsonException or NotSupportedException)
        {
            // Missing or unreadable sidecar: the image is downloaded again and both are rewritten.
            return null;
        }
    }

    /// <summary>Ids of the images in the cache (an image file with its sidecar).</summary>
    public IEnumerable<string> CachedIds() =>
        System.IO.Directory.EnumerateFiles(Directory, "*" + InfoSuffix)
            .Select(info => Path.GetFileName(info)[..^InfoSuffix.Length])
            .Where(id => ImageIds.IsValid(id) && File.Exists(ImagePath(id)));

    public void Touch(string imageId, DateTimeOffset now) => File.SetLastWriteTimeUtc(InfoPath(imageId), now.UtcDateTime);

    public DateTimeOffset LastUse(string imageId) => File.GetLastWriteTimeUtc(InfoPath(imageId));

    /// <summary>Puts a prepared image and its sidecar into place, each by an atomic rename, sidecar first.</summary>
    public void Commit(string imageId, string preparedImage, CacheEntry entry, DateTimeOffset now)
    {
        var info = NewTempPath(imageId, "info");
        try
        {
            using (var stream = new FileStream(info, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = ImageMode }))
            {
                JsonSerializer.Serialize(stream, entry, Json);
                stream.Flush(flushToDisk: true);
            }

            File.SetLastWriteTimeUtc(info, now.UtcDateTime);
            File.Move(info, InfoPath(imageId), overwrite: true);
        }
        catch
        {
            File.Delete(info);
            throw;
        }

        File.Move(preparedImage, ImagePath(imageId), overwrite: true);
    }

    /// <summary>Removes an image, the image first: a crash in between leaves a sidecar alone, which <see cref="Prepare"/> removes.</summary>
    public void Remove(string imageId)
    {
        File.Delete(ImagePath(imageId));
        File.Delete(InfoPath(imageId));
    }

    /// <summary>Makes a finished file readable by QEMU and durable before it is renamed into place.</summary>
    public static void Seal(string path)
    {
        File.SetUnixFileMode(path, ImageMode);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Flush(flushToDisk: true);
    }

    public static void TryDelete(string? path)
    {
        if (path is null)
        {
            return;
        }

        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Prepare removes it at the next start.
        }
    }
}
