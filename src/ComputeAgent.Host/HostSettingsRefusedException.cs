namespace ComputeAgent.Host;

/// <summary>Settings valid on their own that this host's libvirt cannot run (the agent exits with status 2).</summary>
public sealed class HostSettingsRefusedException : Exception
{
    public HostSettingsRefusedException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
