namespace ComputeAgent.Instances.Images;

/// <summary>How long the agent waits for the image service; nothing is retried forever.</summary>
public sealed record GlanceClientOptions
{
    public static readonly GlanceClientOptions Default = new();

    /// <summary>How long a metadata request, or a download until its response headers, may take.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a download may go without receiving a byte before it is abandoned.</summary>
    public TimeSpan ReadStallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The largest image-metadata document accepted (Glance's own are a few KiB).</summary>
    public int MaxMetadataBytes { get; init; } = 1024 * 1024;

    /// <summary>How long one snapshot upload (<c>PUT /v2/images/{id}/file</c>) may take in all.</summary>
    public TimeSpan UploadTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>The clock the timeouts run on (tests drive it by hand instead of waiting them out).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    public void Validate()
    {
        if (RequestTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(RequestTimeout), RequestTimeout, "glance.request_timeout must be positive");
        }

        if (ReadStallTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ReadStallTimeout), ReadStallTimeout, "glance.read_stall_timeout must be positive");
        }

        if (MaxMetadataBytes < 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxMetadataBytes), MaxMetadataBytes, "glance.max_metadata_bytes must be at least 1024");
        }
    }
}
