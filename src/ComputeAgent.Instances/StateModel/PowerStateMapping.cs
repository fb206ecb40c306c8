using ComputeAgent.Libvirt;

namespace ComputeAgent.Instances.StateModel;

/// <summary>virDomainState (with its reason) → power_state, as design.md §2 decides.</summary>
public static class PowerStateMapping
{
    /// <summary>The power_state of a domain in <paramref name="state"/>; null means there is no domain.</summary>
    public static PowerState FromLibvirt(DomainStateInfo? state)
    {
        if (state is not { } info)
        {
            return PowerState.NoState;
        }

        return info.State switch
        {
            DomainState.Running or DomainState.Blocked => PowerState.Running,
            DomainState.Paused => PowerState.Paused,
            DomainState.Shutdown => PowerState.Shutdown,
            // A managed-save image exists: the guest is suspended to disk, not off.
            DomainState.Shutoff => info.ShutoffReason == DomainShutoffReason.Saved ? PowerState.Suspended : PowerState.Shutdown,
            DomainState.Crashed => PowerState.Crashed,
            DomainState.PmSuspended => PowerState.Suspended,
            // NoState, and any state a newer libvirt may add: we cannot say what the guest is doing.
            _ => PowerState.NoState,
        };
    }
}
