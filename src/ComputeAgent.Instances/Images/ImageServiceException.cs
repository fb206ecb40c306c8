namespace ComputeAgent.Instances.Images;

/// <summary>Why an image could not be had; the engine turns it into the instance fault.</summary>
public enum ImageServiceErrorKind
{
    /// <summary>Glance has no such image, or the token's project cannot see it (404).</summary>
    NotFound,

    /// <summary>Glance refused the token: missing, expired or invalid (401).</summary>
    Unauthorized,

    /// <summary>The token's project may not read the image (403).</summary>
    Forbidden,

    /// <summary>The image exists but is not active (queued, saving, killed, deactivated) or has no data.</summary>
    NotActive,

    /// <summary>Glance could not be reached, answered 5xx, or the transfer broke off.</summary>
    Unavailable,

    /// <summary>Glance did not answer, or stopped sending, within the configured time.</summary>
    Timeout,

    /// <summary>Glance's answer is not what the v2 API promises (not JSON, wrong size, no checksum).</summary>
    BadResponse,

    /// <summary>The downloaded bytes do not hash to the checksum Glance recorded at upload.</summary>
    ChecksumMismatch,

    /// <summary>qemu-img shows the data is not a self-contained image of the declared format.</summary>
    Unsafe,

    /// <summary>The image's disk_format or container_format is one this host does not run.</summary>
    UnsupportedFormat,

    /// <summary>The image (download size or virtual size) is larger than this host allows.</summary>
    TooLarge,

    /// <summary>The base-image cache's file system has no room for the image.</summary>
    NoSpace,

    /// <summary>qemu-img check finds the image damaged (truncated, corrupt metadata).</summary>
    Damaged,
}

/// <summary>An image could not be fetched from Glance or made into a base image; the message says what to do.</summary>
public sealed class ImageServiceException : Exception
{
    public ImageServiceException(ImageServiceErrorKind kind, string imageId, string message, Exception? innerException = null)
        : base($"image {imageId}: {message}", innerException)
    {
        Kind = kind;
        ImageId = imageId;
        Reason = message;
    }

    public ImageServiceException()
    {
        Reason = Message;
    }

    public ImageServiceException(string message)
        : base(message)
    {
        Reason = message;
    }

    public ImageServiceException(string message, Exception innerException)
        : base(message, innerException)
    {
        Reason = message;
    }

    public ImageServiceErrorKind Kind { get; } = ImageServiceErrorKind.BadResponse;

    /// <summary>What went wrong and what to do, without the image id the message starts with.</summary>
    public string Reason { get; }

    /// <summary>The Glance image id the error is about (null only from the bare constructors).</summary>
    public string? ImageId { get; }
}
