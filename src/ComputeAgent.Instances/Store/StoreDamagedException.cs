namespace ComputeAgent.Instances.Store;

/// <summary>
/// The state database file is damaged (not an SQLite file, or SQLite's quick_check finds faults).
/// The agent must not start on it, nor start afresh: that would forget the instances it records.
/// </summary>
public sealed class StoreDamagedException : Exception
{
    public StoreDamagedException()
    {
    }

    public StoreDamagedException(string message)
        : base(message)
    {
    }

    public StoreDamagedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
