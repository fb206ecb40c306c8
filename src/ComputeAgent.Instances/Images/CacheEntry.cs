using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// The sidecar of a base image (<c>{id}.info</c>, as Nova's cache once kept): the metadata for
/// cache hits without asking Glance, and what the image was checked against. Its mtime is the
/// image's last use.
/// </summary>
internal sealed record CacheEntry(ImageMeta Meta, long VirtualSize, string SourceFormat, long Size, string? HashAlgorithm, string? HashValue, DateTimeOffset CachedAt);
