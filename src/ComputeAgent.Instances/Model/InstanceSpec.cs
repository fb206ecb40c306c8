namespace ComputeAgent.Instances.Model;

/// <summary>Who owns an instance (Keystone ids).</summary>
public sealed record InstanceOwner(string ProjectId, string UserId);

/// <summary>The kernel and ramdisk of an image with kernel_id / ramdisk_id, fetched into the image cache.</summary>
public sealed record KernelBoot(string KernelPath, string? RamdiskPath);

/// <summary>Everything the domain XML is built from, for one instance.</summary>
public sealed record InstanceSpec
{
    public required Guid Uuid { get; init; }

    /// <summary>The user's display name (Nova's display_name); kept in the agent's metadata, not the libvirt name.</summary>
    public required string Name { get; init; }

    public required Flavor Flavor { get; init; }

    public required ImageMeta Image { get; init; }

    public required InstanceOwner Owner { get; init; }

    public DateTimeOffset CreatedAt { get; init; } = DateTimeOffset.UnixEpoch;

    public IReadOnlyList<Port> Ports { get; init; } = [];

    public IReadOnlyList<BlockDevice> BlockDevices { get; init; } = [];

    /// <summary>Required when the image has kernel_id: where the image cache put the kernel (and ramdisk).</summary>
    public KernelBoot? KernelBoot { get; init; }

    /// <summary>What the guest is told at boot (key pair, user data, metadata, admin password, hostname) and whether it wants a config drive.</summary>
    public GuestData Guest { get; init; } = new();

    /// <summary>The host CPUs claimed for each vCPU of a hw:cpu_policy=dedicated instance (one per vCPU, from the dedicated set).</summary>
    public IReadOnlyList<int>? PinnedCpus { get; init; }
}
