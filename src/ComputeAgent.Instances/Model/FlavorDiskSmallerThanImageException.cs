using System.Globalization;

namespace ComputeAgent.Instances.Model;

/// <summary>
/// Nova's FlavorDiskSmallerThanImage: the image does not fit the flavor's root disk, and a disk is
/// never shrunk under the guest (its file system would end past the disk's end). gRPC
/// INVALID_ARGUMENT before anything is created; during a task, the fault.
/// </summary>
public sealed class FlavorDiskSmallerThanImageException : Exception
{
    private const long GiB = 1L << 30;

    public FlavorDiskSmallerThanImageException(string imageId, long flavorBytes, long imageBytes, string imageSizeKind)
        : base(Describe(imageId, flavorBytes, imageBytes, imageSizeKind))
    {
        ImageId = imageId;
        FlavorBytes = flavorBytes;
        ImageBytes = imageBytes;
    }

    public FlavorDiskSmallerThanImageException()
    {
    }

    public FlavorDiskSmallerThanImageException(string message)
        : base(message)
    {
    }

    public FlavorDiskSmallerThanImageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public string? ImageId { get; }

    /// <summary>The flavor's root disk, in bytes.</summary>
    public long FlavorBytes { get; }

    /// <summary>The image's size that does not fit, in bytes.</summary>
    public long ImageBytes { get; }

    /// <summary>
    /// Refuses <paramref name="imageBytes"/> on <paramref name="flavor"/>'s root disk when it is
    /// larger. root_gib 0 means "the image's own size" (Nova's legacy meaning), so nothing is refused.
    /// </summary>
    /// <param name="imageSizeKind">Which size: "virtual size" (what the guest sees) or "size" (Glance's bytes of data).</param>
    public static void ThrowIfLarger(Flavor flavor, string imageId, long imageBytes, string imageSizeKind)
    {
        ArgumentNullException.ThrowIfNull(flavor);
        var flavorBytes = flavor.RootGiB * GiB;
        if (flavor.RootGiB > 0 && imageBytes > flavorBytes)
        {
            throw new FlavorDiskSmallerThanImageException(imageId, flavorBytes, imageBytes, imageSizeKind);
        }
    }

    private static string Describe(string imageId, long flavorBytes, long imageBytes, string imageSizeKind)
    {
        var neededGiB = (imageBytes + GiB - 1) / GiB;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"the flavor's root disk is too small for image {imageId}: the root disk is {flavorBytes} bytes ({flavorBytes / (double)GiB:0.##} GiB), "
            + $"the image's {imageSizeKind} is {imageBytes} bytes ({imageBytes / (double)GiB:0.##} GiB); "
            + $"use a flavor with root_gib {neededGiB} or more (or root_gib 0 to take the image's size), or a smaller image");
    }
}
