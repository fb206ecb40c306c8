namespace ComputeAgent.Instances.Engine;

/// <summary>The engine's settings; defaults are what an operator of a few hundred hosts would expect.</summary>
public sealed record EngineOptions
{
    /// <summary>Spawns that may build at once; further spawns wait in BUILDING/SCHEDULING.</summary>
    public int MaxConcurrentBuilds { get; init; } = 10;

    /// <summary>How often every instance is checked against libvirt in one bulk call (also after every reconnect).</summary>
    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a graceful (ACPI) stop may take before the guest is destroyed.</summary>
    public TimeSpan GracefulStopTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>When QEMU crashes, start the guest again instead of putting the instance in ERROR.</summary>
    public bool RestartCrashedGuests { get; init; }

    /// <summary>
    /// How long a soft-deleted instance is kept before the reclaim pass deletes it (Nova's
    /// reclaim_instance_interval); zero makes a soft delete an immediate delete.
    /// </summary>
    public TimeSpan ReclaimInstanceInterval { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// Tests only: libvirt's events are read and dropped, so the periodic reconcile alone keeps
    /// the instances in step (what happens when events are lost).
    /// </summary>
    internal bool DropsDomainEvents { get; init; }

    public void Validate()
    {
        if (ReclaimInstanceInterval < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ReclaimInstanceInterval), ReclaimInstanceInterval, "reclaim_instance_interval must not be negative (0: soft delete deletes at once)");
        }


        if (MaxConcurrentBuilds is < 1 or > 1000)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrentBuilds), MaxConcurrentBuilds, "max_concurrent_builds must be between 1 and 1000");
        }

        // The agent's setting is whole seconds; below that only tests that race reconcile with tasks go.
        if (ReconcileInterval < TimeSpan.FromMilliseconds(100))
        {
            throw new ArgumentOutOfRangeException(nameof(ReconcileInterval), ReconcileInterval, "reconcile_interval must be at least 0.1 s");
        }

        if (GracefulStopTimeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(GracefulStopTimeout), GracefulStopTimeout, "graceful_stop_timeout must not be negative");
        }
    }
}
