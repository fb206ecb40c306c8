using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Images;

/// <summary>A backup's rotation: how many backups of this instance and type to keep (Nova's backup).</summary>
public sealed record BackupRotation(string BackupType, int Keep);

/// <summary>
/// A snapshot's or backup's image in Glance: the record is created when the command is accepted
/// (so the caller gets its id at once), the data follows from the task; a backup then deletes the
/// oldest backups of the instance and type beyond the rotation.
/// </summary>
public sealed class GlanceUploadTarget : ImageUploadTarget
{
    private readonly GlanceClient glance;
    private readonly string? token;
    private readonly Guid instance;
    private readonly BackupRotation? rotation;
    private readonly string imageId;

    // False for an image the caller created: a failed snapshot leaves it to the caller, who deletes it.
    private readonly bool owned = true;

    private GlanceUploadTarget(GlanceClient glance, string imageId, string? token, Guid instance, BackupRotation? rotation, bool owned = true)
    {
        this.owned = owned;
        this.glance = glance;
        this.imageId = imageId;
        this.token = token;
        this.instance = instance;
        this.rotation = rotation;
    }

    public override string ImageId => imageId;

    public override string? CreatedImageId => owned ? imageId : null;

    /// <summary>
    /// The properties Nova gives a snapshot: the instance's image properties carried over (so the
    /// snapshot boots the same way), the caller's metadata, then image_type, instance_uuid,
    /// base_image_ref (and backup_type), which the caller cannot override.
    /// </summary>
    public static IReadOnlyDictionary<string, string> PropertiesFor(InstanceSpec spec, IReadOnlyDictionary<string, string> metadata, BackupRotation? rotation)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(metadata);
        var properties = new Dictionary<string, string>(spec.Image.Properties ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        foreach (var (key, value) in metadata)
        {
            properties[key] = value;
        }

        properties["image_type"] = rotation is null ? "snapshot" : "backup";
        properties["instance_uuid"] = spec.Uuid.ToString();
        properties["base_image_ref"] = spec.Image.Id;
        if (rotation is not null)
        {
            properties["backup_type"] = rotation.BackupType;
        }

        return properties;
    }

    /// <summary>Creates the image record (status queued) the task will upload to.</summary>
    public static async Task<GlanceUploadTarget> CreateAsync(GlanceClient glance, InstanceSpec spec, string name, IReadOnlyDictionary<string, string> metadata, BackupRotation? rotation, string? token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(glance);
        SpecValues.CheckText("name", name);
        if (rotation is { Keep: < 0 })
        {
            throw new InvalidInstanceSpecException("rotation", rotation.Keep.ToString(System.Globalization.CultureInfo.InvariantCulture), "0 or more backups to keep");
        }

        if (rotation is not null)
        {
            SpecValues.CheckText("backup_type", rotation.BackupType);
        }

        var id = await glance.CreateImageAsync(name, "qcow2", PropertiesFor(spec, metadata, rotation), token, cancellationToken).ConfigureAwait(false);
        return new GlanceUploadTarget(glance, id, token, spec.Uuid, rotation);
    }

    /// <summary>An image record the caller created (Nova creates its snapshot's image first): only the data is uploaded.</summary>
    public static GlanceUploadTarget Existing(GlanceClient glance, InstanceSpec spec, string imageId, string? token)
    {
        ArgumentNullException.ThrowIfNull(glance);
        ArgumentNullException.ThrowIfNull(spec);
        if (!ImageIds.IsValid(imageId))
        {
            throw new InvalidInstanceSpecException("image_id", imageId, "a Glance image id (letters, digits, '-' and '_')");
        }

        return new GlanceUploadTarget(glance, imageId, token, spec.Uuid, rotation: null, owned: false);
    }

    public override async Task UploadAsync(string path, CancellationToken cancellationToken)
    {
        if (!owned)
        {
            // The snapshot is a flattened qcow2 whatever the caller's record said (or left unset).
            await glance.SetFormatsAsync(imageId, "qcow2", "bare", token, cancellationToken).ConfigureAwait(false);
        }

        await glance.UploadImageDataAsync(imageId, path, token, cancellationToken).ConfigureAwait(false);
        if (rotation is null)
        {
            return;
        }

        var backups = await glance.ListImageIdsAsync(
            new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["instance_uuid"] = instance.ToString(),
                ["image_type"] = "backup",
                ["backup_type"] = rotation.BackupType,
            },
            token,
            cancellationToken).ConfigureAwait(false);
        foreach (var old in backups.Skip(rotation.Keep))
        {
            await glance.DeleteImageAsync(old, token, cancellationToken).ConfigureAwait(false);
        }
    }

    public override async Task AbandonAsync(CancellationToken cancellationToken)
    {
        if (!owned)
        {
            return;
        }

        try
        {
            await glance.DeleteImageAsync(imageId, token, cancellationToken).ConfigureAwait(false);
        }
        catch (ImageServiceException)
        {
            // Best effort: the failure being reported matters more than a queued image left behind.
        }
    }
}
