namespace ComputeAgent.Instances.Store;

public sealed record InstanceStoreOptions
{
    public static readonly InstanceStoreOptions Default = new();

    /// <summary>The clock of created_at / updated_at / event times.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>The most changes committed in one transaction.</summary>
    public int MaxBatchSize { get; init; } = 256;

    /// <summary>How long a connection waits for another one's lock (a prune, sqlite3 run by an operator).</summary>
    public TimeSpan BusyTimeout { get; init; } = TimeSpan.FromSeconds(5);
}
