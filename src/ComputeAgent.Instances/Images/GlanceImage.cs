using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// One image as <c>GET /v2/images/{id}</c> shows it: the metadata the XML builder uses plus what
/// a download is checked against.
/// </summary>
/// <param name="Status">Glance's status: only "active" images have data to download.</param>
/// <param name="Size">Bytes of image data, as uploaded; null while there is none.</param>
/// <param name="Checksum">MD5 of the data in hex (the legacy checksum).</param>
/// <param name="HashAlgorithm">os_hash_algo: the hashlib name of the multihash algorithm (sha512 by default).</param>
/// <param name="HashValue">os_hash_value: the data's hash with that algorithm, in hex.</param>
public sealed record GlanceImage(ImageMeta Meta, string Status, long? Size, string? Checksum, string? HashAlgorithm, string? HashValue)
{
    public const string ActiveStatus = "active";

    public string Id => Meta.Id;

    public bool IsActive => Status == ActiveStatus;

    /// <summary>virtual_size: the disk size the guest sees, in bytes, when Glance has worked it out (null otherwise).</summary>
    public long? VirtualSize { get; init; }

    /// <summary>
    /// Nova's API check, before anything is created: refuses the image when what Glance already
    /// knows (its size, its virtual size) is larger than <paramref name="flavor"/>'s root disk.
    /// min_disk is the spec validation's. What Glance does not know is checked once the image is cached.
    /// </summary>
    /// <exception cref="FlavorDiskSmallerThanImageException">It does not fit.</exception>
    public void CheckFits(Flavor flavor)
    {
        if (VirtualSize is { } virtualSize)
        {
            FlavorDiskSmallerThanImageException.ThrowIfLarger(flavor, Id, virtualSize, "virtual size");
        }

        if (Size is { } size && !ImageFormats.IsBootFile(Meta.DiskFormat))
        {
            FlavorDiskSmallerThanImageException.ThrowIfLarger(flavor, Id, size, "size");
        }
    }
}
