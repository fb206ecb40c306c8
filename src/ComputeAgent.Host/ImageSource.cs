using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Host;

/// <summary>Images for spawns: metadata from Glance, bytes through the base-image cache.</summary>
public sealed class ImageSource
{
    private readonly GlanceClient? glance;
    private readonly ImageCache? cache;

    public ImageSource(GlanceClient? glance, ImageCache? cache, AgentImageService? own)
    {
        this.glance = glance;
        this.cache = cache;
        Own = own;
    }

    /// <summary>The base-image cache, when an image service is configured.</summary>
    public ImageCache? Cache => cache;

    /// <summary>The image service with the agent's own access (no caller's token), when one is configured.</summary>
    public AgentImageService? Own { get; }

    /// <summary>The image's metadata and checksums from Glance (asked once: the cache reuses them on a miss).</summary>
    public Task<GlanceImage> GetImageAsync(string imageId, string? token, CancellationToken cancellationToken) =>
        (glance ?? throw NotConfigured(imageId)).GetImageAsync(imageId, token, cancellationToken);

    /// <summary>Creates the image a snapshot or backup of <paramref name="spec"/>'s instance uploads to.</summary>
    public Task<GlanceUploadTarget> CreateUploadTargetAsync(InstanceSpec spec, string name, IReadOnlyDictionary<string, string> metadata, BackupRotation? rotation, string? token, CancellationToken cancellationToken) =>
        GlanceUploadTarget.CreateAsync(glance ?? throw NotConfigured(name), spec, name, metadata, rotation, token, cancellationToken);

    /// <summary>The image the caller already created (Nova's snapshot), uploaded to as it is.</summary>
    public GlanceUploadTarget ExistingUploadTarget(InstanceSpec spec, string imageId, string? token) =>
        GlanceUploadTarget.Existing(glance ?? throw NotConfigured(imageId), spec, imageId, token);

    /// <summary>
    /// Where the kernel and ramdisk of an image with kernel_id / ramdisk_id will be in the cache
    /// (fetched by <see cref="GetBaseImageAsync"/> while the instance builds); null without kernel_id.
    /// </summary>
    public KernelBoot? KernelBootFor(ImageMeta image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var properties = ImageProperties.Parse(image.Properties);
        if (properties.KernelId is not { } kernel)
        {
            return null;
        }

        var images = cache ?? throw NotConfigured(image.Id);
        return new KernelBoot(
            CachePath(images, kernel, "kernel_id"),
            properties.RamdiskId is { } ramdisk ? CachePath(images, ramdisk, "ramdisk_id") : null);
    }

    /// <summary>The base image's local path; the kernel and ramdisk an image names are fetched first (Nova's direct kernel boot).</summary>
    public async Task<string> GetBaseImageAsync(GlanceImage glanceImage, string? token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(glanceImage);
        var image = glanceImage.Meta;
        var images = cache ?? throw NotConfigured(image.Id);
        var properties = ImageProperties.Parse(image.Properties);
        foreach (var (id, format, property) in new[] { (properties.KernelId, "aki", "kernel_id"), (properties.RamdiskId, "ari", "ramdisk_id") })
        {
            if (id is null)
            {
                continue;
            }

            var file = await images.GetAsync(id, token, cancellationToken).ConfigureAwait(false);
            if (file.Meta.DiskFormat != format)
            {
                throw new ImageServiceException(
                    ImageServiceErrorKind.UnsupportedFormat,
                    id,
                    $"image {image.Id} names it as its {property}, but its disk_format is '{file.Meta.DiskFormat}', not '{format}'; upload the {property[..^3]} with disk_format {format}");
            }
        }

        var cached = await images.GetAsync(glanceImage, token, cancellationToken).ConfigureAwait(false);
        return cached.Path;
    }

    private static string CachePath(ImageCache images, string imageId, string property)
    {
        try
        {
            return images.PathOf(imageId);
        }
        catch (ArgumentException)
        {
            throw new InvalidInstanceSpecException($"image.properties[{property}]", imageId, "a Glance image id (letters, digits, '-' and '_')");
        }
    }

    private static ImageServiceException NotConfigured(string imageId) =>
        new(ImageServiceErrorKind.Unavailable, imageId, "no image service is configured: set Agent:ImageServiceUrl (the Glance v2 endpoint) in /etc/compute-agent/agent.json");
}
