namespace ComputeAgent.Instances.Images;

/// <summary>
/// Where a snapshot's or a backup's image goes: an image record already created in the image
/// service (so the caller knows its id at once, as Nova's API does) waiting for its data.
/// </summary>
public abstract class ImageUploadTarget
{
    /// <summary>The image's id in the image service.</summary>
    public abstract string ImageId { get; }

    /// <summary>
    /// The image record the agent created for this task (null when the caller created it): if the
    /// agent stops before the upload ends, recovery deletes it.
    /// </summary>
    public virtual string? CreatedImageId => null;

    /// <summary>Uploads the standalone qcow2 at <paramref name="path"/> as the image's data, then does what must follow (backup rotation).</summary>
    public abstract Task UploadAsync(string path, CancellationToken cancellationToken);

    /// <summary>The snapshot failed: removes the image record that will never get its data.</summary>
    public abstract Task AbandonAsync(CancellationToken cancellationToken);
}
