namespace ComputeAgent.Instances.Engine;

/// <summary>The command is not allowed in the instance's current state (gRPC FAILED_PRECONDITION); nothing was changed.</summary>
public sealed class InstanceCommandRefusedException : Exception
{
    public InstanceCommandRefusedException(string message)
        : base(message)
    {
    }

    public InstanceCommandRefusedException()
    {
    }

    public InstanceCommandRefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>No instance with that UUID on this host (gRPC NOT_FOUND).</summary>
public sealed class InstanceNotFoundException : Exception
{
    public InstanceNotFoundException(Guid uuid)
        : base($"no instance {uuid} on this host")
    {
    }

    public InstanceNotFoundException()
    {
    }

    public InstanceNotFoundException(string message)
        : base(message)
    {
    }

    public InstanceNotFoundException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The engine does not implement this command yet (gRPC UNIMPLEMENTED); nothing was changed.</summary>
public sealed class CommandNotSupportedException : Exception
{
    public CommandNotSupportedException(string message)
        : base(message)
    {
    }

    public CommandNotSupportedException()
    {
    }

    public CommandNotSupportedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A rebuild got past setting the old root disk aside and then failed; the message says where that disk is.</summary>
public sealed class RebuildFailedException : Exception
{
    public RebuildFailedException(string message)
        : base(message)
    {
    }

    public RebuildFailedException()
    {
    }

    public RebuildFailedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
