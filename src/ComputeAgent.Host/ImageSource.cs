using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Host;

/// <summary>Images for spawns: metadata from Glance, bytes through the base-image cache.</summary>
public sealed class ImageSource
{
    private readonly GlanceClient? glance;
    private readonly ImageCache? cache;

    public ImageSource(GlanceClient? glance, ImageCache? cache)
    {
        this.glance = glance;
        this.cache = cache;
    }

    /// <summary>The base-image cache, when an image service is configured.</summary>
    public ImageCache? Cache => cache;

    /// <summary>The image's metadata and checksums from Glance (asked once: the cache reuses them on a miss).</summary>
    public Task<GlanceImage> GetImageAsync(string imageId, string? token, CancellationToken cancellationToken) =>
        (glance ?? throw NotConfigured(imageId)).GetImageAsync(imageId, token, cancellationToken);

    public async Task<string> GetBaseImageAsync(GlanceImage image, string? token, CancellationToken cancellationToken)
    {
        var cached = await (cache ?? throw NotConfigured(image.Meta.Id)).GetAsync(image, token, cancellationToken).ConfigureAwait(false);
        return cached.Path;
    }

    /// <summary>Creates the image a snapshot or backup of <paramref name="spec"/>'s instance uploads to.</summary>
    public Task<GlanceUploadTarget> CreateUploadTargetAsync(InstanceSpec spec, string name, IReadOnlyDictionary<string, string> metadata, BackupRotation? rotation, string? token, CancellationToken cancellationToken) =>
        GlanceUploadTarget.CreateAsync(glance ?? throw NotConfigured(name), spec, name, metadata, rotation, token, cancellationToken);

    private static ImageServiceException NotConfigured(string imageId) =>
        new(ImageServiceErrorKind.Unavailable, imageId, "no image service is configured: set Agent:ImageServiceUrl (the Glance v2 endpoint) in /etc/compute-agent/agent.json");
}
