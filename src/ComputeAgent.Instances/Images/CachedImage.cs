using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Images;

/// <summary>A verified, inspected base image in the cache, ready to back an instance's overlay.</summary>
/// <param name="Path">The qcow2 base image (overlays name it as their backing file, format <see cref="Format"/>).</param>
/// <param name="Meta">The image's metadata as Glance showed it when it was downloaded.</param>
/// <param name="VirtualSize">The disk size the guest sees, in bytes; a root disk must be at least this large.</param>
public sealed record CachedImage(string Path, ImageMeta Meta, long VirtualSize)
{
    /// <summary>The format of every base image in the cache.</summary>
    public const string Format = ImageFormats.Cache;
}
