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
            // A managed-save image exists: the guest is suspended to disk, not off. QEMU that died
            // under the guest (kill -9, a crash with on_crash=destroy) leaves SHUTOFF with reason
            // CRASHED or FAILED: design.md §2 calls that CRASHED, not a shutdown.
            DomainState.Shutoff => info.ShutoffReason switch
            {
                DomainShutoffReason.Saved => PowerState.Suspended,
                DomainShutoffReason.Crashed or DomainShutoffReason.Failed => PowerState.Crashed,
                _ => PowerState.Shutdown,
            },
            DomainState.Crashed => PowerState.Crashed,
            DomainState.PmSuspended => PowerState.Suspended,
            // NoState, and any state a newer libvirt may add: we cannot say what the guest is doing.
            _ => PowerState.NoState,
        };
    }
}
