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
}
