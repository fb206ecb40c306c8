using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// What some commands need beyond the instance itself. Each command reads only its own fields;
/// the engine checks that they are there before it accepts the command.
/// </summary>
public sealed record CommandInput
{
    public static CommandInput None { get; } = new();

    /// <summary>Resize: the flavor to resize to.</summary>
    public Flavor? Flavor { get; init; }

    /// <summary>Rebuild: the new image's metadata (the same image id rebuilds from a fresh copy).</summary>
    public ImageMeta? Image { get; init; }

    /// <summary>Stop: how long the guest may take to power off after the ACPI request (zero: destroy at once); null: the engine's GracefulStopTimeout.</summary>
    public TimeSpan? GracefulStopTimeout { get; init; }

    /// <summary>Rebuild: where the new image's kernel and ramdisk will be (images with kernel_id), else null.</summary>
    public KernelBoot? KernelBoot { get; init; }

    /// <summary>Rebuild: fetches the new image into the base-image cache and returns its local path. Rescue: the rescue image's (null: the instance's own base image).</summary>
    public Func<CancellationToken, Task<string>>? BaseImage { get; init; }

    /// <summary>Set admin password, spawn and rebuild (for the config drive): the password (never logged, never stored).</summary>
    public string? AdminPassword { get; init; }

    /// <summary>Set admin password: the guest account (empty: the image's os_admin_user, else root).</summary>
    public string? User { get; init; }

    /// <summary>Snapshot and backup: where the flattened root disk goes.</summary>
    public ImageUploadTarget? Upload { get; init; }
}
