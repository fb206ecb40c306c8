using System.Security.Cryptography;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// Hashes image data as it streams in and compares it with what Glance recorded at upload: the
/// multihash (os_hash_algo / os_hash_value) when the agent knows its algorithm, else the legacy
/// MD5 <c>checksum</c>, as glanceclient verifies downloads.
/// </summary>
internal sealed class ImageChecksum : IDisposable
{
    private readonly IncrementalHash hash;

    private ImageChecksum(string algorithm, string expected, IncrementalHash hash)
    {
        Algorithm = algorithm;
        Expected = expected;
        this.hash = hash;
    }

    /// <summary>The hashlib name of the algorithm checked ("sha512", "md5", ...).</summary>
    public string Algorithm { get; }

    /// <summary>The hex digest Glance recorded.</summary>
    public string Expected { get; }

    /// <summary>The checksum to verify <paramref name="image"/> with, or null when there is none and none is required.</summary>
    public static ImageChecksum? For(GlanceImage image, bool required)
    {
        if (image is { HashAlgorithm: { } algorithm, HashValue: { Length: > 0 } value } && Create(algorithm) is { } multihash)
        {
            return new ImageChecksum(algorithm, value, multihash);
        }

        if (image.Checksum is { Length: > 0 } md5)
        {
            // MD5 only because it is what Glance recorded; it detects damage, not tampering.
#pragma warning disable CA5351
            return new ImageChecksum("md5", md5, IncrementalHash.CreateHash(HashAlgorithmName.MD5));
#pragma warning restore CA5351
        }

        return required
            ? throw new ImageServiceException(
                ImageServiceErrorKind.BadResponse,
                image.Id,
                $"Glance records no checksum the agent can verify (os_hash_algo '{image.HashAlgorithm ?? "none"}', checksum none); "
                + "re-upload the image so that Glance hashes it")
            : null;
    }

    public void Append(ReadOnlySpan<byte> data) => hash.AppendData(data);

    /// <exception cref="ImageServiceException">The data does not hash to what Glance recorded.</exception>
    public void Verify(string imageId)
    {
        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (!string.Equals(actual, Expected.Trim(), StringComparison.OrdinalIgnoreCase))
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.ChecksumMismatch,
                imageId,
                $"the downloaded data's {Algorithm} is {actual} but Glance recorded {Expected}: the data was damaged in transit or in Glance's store; "
                + "retry, and if it fails again re-upload the image");
        }
    }

    public void Dispose() => hash.Dispose();

    // hashlib names Glance may record (its hashing_algorithm option); an unknown one falls back to MD5.
    private static IncrementalHash? Create(string algorithm) => algorithm switch
    {
        "sha512" => IncrementalHash.CreateHash(HashAlgorithmName.SHA512),
        "sha384" => IncrementalHash.CreateHash(HashAlgorithmName.SHA384),
        "sha256" => IncrementalHash.CreateHash(HashAlgorithmName.SHA256),
#pragma warning disable CA5350 // Glance chose it at upload; it detects damage, not tampering.
        "sha1" => IncrementalHash.CreateHash(HashAlgorithmName.SHA1),
#pragma warning restore CA5350
        "sha3_256" when SHA3_256.IsSupported => IncrementalHash.CreateHash(HashAlgorithmName.SHA3_256),
        "sha3_384" when SHA3_384.IsSupported => IncrementalHash.CreateHash(HashAlgorithmName.SHA3_384),
        "sha3_512" when SHA3_512.IsSupported => IncrementalHash.CreateHash(HashAlgorithmName.SHA3_512),
        _ => null,
    };
}
