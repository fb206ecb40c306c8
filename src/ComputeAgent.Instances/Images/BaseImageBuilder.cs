using System.Buffers;

namespace ComputeAgent.Instances.Images;

/// <summary>A base image made and checked, in a temp file of the cache, not yet in place.</summary>
internal sealed record PreparedImage(string Path, QemuImageInfo Info, long Size, string? HashAlgorithm, string? HashValue);

/// <summary>
/// Turns one Glance image into a qcow2 base image in the cache's temp directory: refuses what the
/// host does not run before downloading, streams the data to disk while hashing it, verifies the
/// checksum, inspects the result with qemu-img and refuses anything that is not a self-contained
/// image of the declared format, then converts it to qcow2. Whatever fails leaves no file behind.
/// </summary>
internal sealed class BaseImageBuilder
{
    private const int BufferSize = 1 << 20;
    private const int NoSpaceErrno = 28;

    // Nova's libvirt driver boots only these containers: the disk itself (a kernel or ramdisk as itself too).
    private static readonly string[] ContainerFormats = ["bare", "ami", "aki", "ari"];

    private readonly GlanceClient glance;
    private readonly ImageCacheOptions options;
    private readonly ImageCacheFiles files;

    public BaseImageBuilder(GlanceClient glance, ImageCacheOptions options, ImageCacheFiles files)
    {
        this.glance = glance;
        this.options = options;
        this.files = files;
    }

    public async Task<PreparedImage> BuildAsync(GlanceImage image, string? token, CancellationToken cancellationToken)
    {
        var format = CheckAcceptable(image);
        CheckSpace(image, format);
        using var checksum = ImageChecksum.For(image, options.RequireChecksum);
        var download = files.NewTempPath(image.Id, "download");
        string? converted = null;
        try
        {
            var size = await DownloadAsync(image, token, download, checksum, cancellationToken).ConfigureAwait(false);
            checksum?.Verify(image.Id);
            if (ImageFormats.IsBootFile(format))
            {
                // A kernel or ramdisk for direct kernel boot: QEMU reads it as a file, never as a disk, so it is kept as it came.
                ImageCacheFiles.Seal(download);
                return new PreparedImage(download, new QemuImageInfo(format, size, null, null, false, null), size, checksum?.Algorithm, checksum?.Expected);
            }

            var info = await InspectAsync(image, download, format, cancellationToken).ConfigureAwait(false);
            var result = download;
            if (format != ImageFormats.Cache)
            {
                converted = files.NewTempPath(image.Id, ImageFormats.Cache);
                await ConvertAsync(image, download, format, converted, cancellationToken).ConfigureAwait(false);
                File.Delete(download);
                result = converted;
            }

            ImageCacheFiles.Seal(result);
            return new PreparedImage(result, info, size, checksum?.Algorithm, checksum?.Expected);
        }
        catch (Exception e)
        {
            ImageCacheFiles.TryDelete(download);
            ImageCacheFiles.TryDelete(converted);
            if (e is IOException io && IsNoSpace(io))
            {
                throw NoSpace(image, e.Message, e);
            }

            throw;
        }
    }

    private static bool IsNoSpace(IOException e) =>
        e.HResult == NoSpaceErrno || e.Message.Contains("No space left on device", StringComparison.Ordinal);

    /// <summary>The qemu-img name of the image's format, after refusing what this host does not run.</summary>
    private string CheckAcceptable(GlanceImage image)
    {
        if (!image.IsActive)
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.NotActive,
                image.Id,
                $"Glance shows it as '{image.Status}', and only active images have data; wait for the upload to finish or use another image");
        }

        var meta = image.Meta;
        if (!ContainerFormats.Contains(meta.ContainerFormat))
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.UnsupportedFormat,
                image.Id,
                $"container_format '{meta.ContainerFormat}' wraps the disk in a container this host does not unpack; upload the disk itself with container_format bare");
        }

        if (ImageFormats.IsBootFile(meta.DiskFormat))
        {
            return meta.DiskFormat;
        }

        if (!options.AcceptedDiskFormats.Contains(meta.DiskFormat) || ImageFormats.QemuName(meta.DiskFormat) is not { } format)
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.UnsupportedFormat,
                image.Id,
                $"disk_format '{meta.DiskFormat}' is not accepted on this host (accepted: {string.Join(", ", options.AcceptedDiskFormats)}; the operator sets Agent:AcceptedDiskFormats); "
                + "convert it (qemu-img convert -O qcow2) and upload it again");
        }

        if (image.Size > options.MaxImageBytes)
        {
            throw TooLarge(image, $"it is {image.Size} bytes and the agent takes images of at most {options.MaxImageBytes} bytes");
        }

        return format;
    }

    private void CheckSpace(GlanceImage image, string format)
    {
        if (image.Size is not { } size)
        {
            return;
        }

        // The download, and for a conversion about as much again (the qcow2 holds the same data).
        var needed = format == ImageFormats.Cache || ImageFormats.IsBootFile(format) ? size : 2 * size;
        var free = new DriveInfo(files.Directory).AvailableFreeSpace;
        if (needed > free)
        {
            throw NoSpace(image, $"it needs about {needed} bytes and {free} are free", null);
        }
    }

    private async Task<long> DownloadAsync(GlanceImage image, string? token, string path, ImageChecksum? checksum, CancellationToken cancellationToken)
    {
        var limit = Math.Min(image.Size ?? long.MaxValue, options.MaxImageBytes);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            var source = await glance.OpenImageDataAsync(image.Id, token, cancellationToken).ConfigureAwait(false);
            await using (source.ConfigureAwait(false))
            {
                var create = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 0, UnixCreateMode = ImageCacheFiles.ImageMode };
                var target = new FileStream(path, create);
                await using (target.ConfigureAwait(false))
                {
                    long total = 0;
                    int read;
                    while ((read = await source.ReadAsync(buffer.AsMemory(), cancellationToken).ConfigureAwait(false)) > 0)
                    {
                        total += read;
                        if (total > limit)
                        {
                            throw total > options.MaxImageBytes
                                ? TooLarge(image, $"the download passed the agent's limit of {options.MaxImageBytes} bytes")
                                : new ImageServiceException(
                                    ImageServiceErrorKind.BadResponse,
                                    image.Id,
                                    $"Glance sent more than the {image.Size} bytes it records as the image's size; retry, and if it persists check the image in Glance");
                        }

                        checksum?.Append(buffer.AsSpan(0, read));
                        await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    }

                    if (image.Size is { } size && total != size)
                    {
                        throw new ImageServiceException(
                            ImageServiceErrorKind.BadResponse,
                            image.Id,
                            $"the download ended after {total} of the {size} bytes Glance records; retry");
                    }

                    target.Flush(flushToDisk: true);
                    return total;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task<QemuImageInfo> InspectAsync(GlanceImage image, string path, string format, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.InspectTimeout);
        QemuImageInfo info;
        try
        {
            info = QemuImageInfo.Parse(await QemuImg.InspectJsonAsync(path, timeout.Token, options.QemuImgProgram).ConfigureAwait(false));
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw Unsafe(image, $"qemu-img info did not finish within {options.InspectTimeout.TotalSeconds:0.###} s, as crafted images make it", e);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw Unsafe(image, $"qemu-img cannot read it ({e.Message}); the data is not a valid {image.Meta.DiskFormat} image, fix the upload", e);
        }

        if (info.Format != format)
        {
            throw Unsafe(
                image,
                $"its disk_format is '{image.Meta.DiskFormat}' but the data is a '{info.Format}' image; a disguised image can make QEMU open host files, "
                + "so set the image's disk_format to what it is (or upload the right data)");
        }

        if (info.BackingFile is { } backing)
        {
            throw Unsafe(image, $"it has a backing file ('{backing}'), which QEMU would open on this host; flatten it (qemu-img convert -O qcow2) and upload it again");
        }

        if (info.DataFile is { } dataFile)
        {
            throw Unsafe(image, $"it keeps its data in an external data file ('{dataFile}'), which QEMU would open on this host; flatten it (qemu-img convert -O qcow2) and upload it again");
        }

        if (info.Corrupt)
        {
            throw Unsafe(image, "the qcow2 marks itself corrupt; repair it (qemu-img check -r all) and upload it again");
        }

        if (format == "vmdk" && !ImageFormats.IsSelfContainedVmdk(info.CreateType))
        {
            throw Unsafe(image, $"vmdk create-type '{info.CreateType}' may keep extents in other files; only monolithicSparse and streamOptimized are accepted, convert it and upload it again");
        }

        if (info.VirtualSize > options.MaxVirtualSizeBytes)
        {
            throw TooLarge(image, $"its virtual size is {info.VirtualSize} bytes and the agent takes at most {options.MaxVirtualSizeBytes} bytes");
        }

        await CheckAsync(image, path, format, timeout.Token, cancellationToken).ConfigureAwait(false);
        return info;
    }

    /// <summary>qemu-img check: info reads only the header, so a truncated or damaged image passes it and would boot.</summary>
    private async Task CheckAsync(GlanceImage image, string path, string format, CancellationToken timeout, CancellationToken cancellationToken)
    {
        // A raw image has no metadata to check (qemu-img answers "not supported").
        if (format == "raw")
        {
            return;
        }

        QemuImageCheck check;
        try
        {
            check = await QemuImg.CheckAsync(path, format, timeout, options.QemuImgProgram).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw Unsafe(image, $"qemu-img check did not finish within {options.InspectTimeout.TotalSeconds:0.###} s, as crafted images make it", e);
        }

        if (!check.IsUsable)
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.Damaged,
                image.Id,
                $"refused as damaged: {check.Describe()}; the upload is truncated or the image is corrupt, upload a good copy again");
        }
    }

    private async Task ConvertAsync(GlanceImage image, string source, string format, string target, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConvertTimeout);
        try
        {
            await QemuImg.ConvertAsync(source, format, target, ImageFormats.Cache, timeout.Token, options.QemuImgProgram).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.Timeout,
                image.Id,
                $"converting it from {format} to qcow2 took longer than {options.ConvertTimeout.TotalSeconds:0.###} s; check the image cache disk's speed and that qemu-img convert of this image finishes by hand",
                e);
        }
    }

    private static ImageServiceException Unsafe(GlanceImage image, string why, Exception? inner = null) =>
        new(ImageServiceErrorKind.Unsafe, image.Id, $"refused as unsafe: {why}", inner);

    private static ImageServiceException TooLarge(GlanceImage image, string why) =>
        new(ImageServiceErrorKind.TooLarge, image.Id, $"too large for this host: {why}; use a smaller image");

    private ImageServiceException NoSpace(GlanceImage image, string why, Exception? inner) =>
        new(ImageServiceErrorKind.NoSpace, image.Id, $"no room in the image cache {files.Directory}: {why}; remove unused base images or grow the file system", inner);
}
