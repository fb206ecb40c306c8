namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// What an instance's vm_state becomes when libvirt shows a power_state that no task of ours
/// explains (design.md §2, Nova's power-state sync): the guest powered itself off, QEMU died,
/// someone ran <c>virsh suspend</c> or <c>virsh start</c> behind the agent's back.
/// </summary>
public static class PowerSyncRules
{
    /// <summary>
    /// The vm_state for an instance in <paramref name="vmState"/> whose guest is now
    /// <paramref name="power"/>; the same vm_state when the two agree or when the vm_state is one
    /// that only the agent's own commands move (BUILDING, RESCUED, RESIZED, SOFT_DELETED, DELETED, ERROR).
    /// </summary>
    /// <param name="errorFromPowerSync">The vm_state is ERROR because an earlier power sync put it there
    /// (the guest vanished or crashed), not because a task failed: a guest running again heals it.</param>
    public static VmState Reconcile(VmState vmState, PowerState power, bool restartCrashed = false, bool errorFromPowerSync = false) => (vmState, power) switch
    {
        // What power sync alone concluded, power sync alone may undo; a failed task's ERROR stays.
        (VmState.Error, PowerState.Running) when errorFromPowerSync => VmState.Active,

        // A crash is an error wherever it happens, unless the host is set to restart crashed guests
        // (the engine then starts it again and the instance stays where it was).
        (VmState.Active or VmState.Paused or VmState.Stopped or VmState.Suspended, PowerState.Crashed) => restartCrashed ? vmState : VmState.Error,

        // The domain vanished (someone undefined it): nothing to run, and nothing we can trust.
        (VmState.Active or VmState.Paused or VmState.Stopped or VmState.Suspended, PowerState.NoState) => VmState.Error,

        (VmState.Active, PowerState.Paused) => VmState.Paused,
        (VmState.Active, PowerState.Shutdown) => VmState.Stopped,
        (VmState.Active, PowerState.Suspended) => VmState.Suspended,

        (VmState.Paused, PowerState.Running) => VmState.Active,
        (VmState.Paused, PowerState.Shutdown) => VmState.Stopped,
        (VmState.Paused, PowerState.Suspended) => VmState.Suspended,

        (VmState.Stopped, PowerState.Running) => VmState.Active,
        (VmState.Stopped, PowerState.Paused) => VmState.Paused,
        (VmState.Stopped, PowerState.Suspended) => VmState.Suspended,

        (VmState.Suspended, PowerState.Running) => VmState.Active,
        (VmState.Suspended, PowerState.Paused) => VmState.Paused,

        // A managed-save image removed behind our back leaves a plain shut-off guest.
        (VmState.Suspended, PowerState.Shutdown) => VmState.Stopped,

        _ => vmState,
    };
}
