namespace ComputeAgent.Instances.Store;

/// <summary>The state database cannot be used by this agent: its schema is newer than the code, or a migration failed.</summary>
public sealed class StoreSchemaException : Exception
{
    public StoreSchemaException()
    {
    }

    public StoreSchemaException(string message)
        : base(message)
    {
    }

    public StoreSchemaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
