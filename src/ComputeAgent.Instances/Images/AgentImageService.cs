namespace ComputeAgent.Instances.Images;

/// <summary>
/// The image service as the agent reaches it on its own, with no caller's token (none, or the
/// agent's own Keystone service token): start-up recovery deletes through it the queued image of
/// a snapshot or backup that a stop interrupted, the caller's token not being kept.
/// </summary>
public sealed class AgentImageService
{
    private readonly GlanceClient glance;
    private readonly string? token;

    public AgentImageService(GlanceClient glance, string? token)
    {
        this.glance = glance ?? throw new ArgumentNullException(nameof(glance));
        this.token = token;
    }

    /// <summary>Deletes the image record (gone already counts as deleted); an <see cref="ImageServiceException"/> says why not.</summary>
    public Task DeleteImageAsync(string imageId, CancellationToken cancellationToken) =>
        glance.DeleteImageAsync(imageId, token, cancellationToken);
}
