using ComputeAgent.Instances.StateModel;
using Xunit;

namespace ComputeAgent.Instances.Tests.StateModel;

public sealed class PowerSyncRulesTests
{
    // Typed from design.md §2 and issue 3 item 5, not from the production switch.
    [Theory]
    [InlineData(VmState.Active, PowerState.Shutdown, VmState.Stopped)] // guest powered itself off
    [InlineData(VmState.Active, PowerState.Crashed, VmState.Error)] // QEMU crashed
    [InlineData(VmState.Active, PowerState.Paused, VmState.Paused)] // virsh suspend behind our back
    [InlineData(VmState.Active, PowerState.Suspended, VmState.Suspended)] // virsh managedsave
    [InlineData(VmState.Active, PowerState.NoState, VmState.Error)] // domain undefined
    [InlineData(VmState.Active, PowerState.Running, VmState.Active)]
    [InlineData(VmState.Paused, PowerState.Running, VmState.Active)] // virsh resume
    [InlineData(VmState.Paused, PowerState.Shutdown, VmState.Stopped)]
    [InlineData(VmState.Paused, PowerState.Paused, VmState.Paused)]
    [InlineData(VmState.Stopped, PowerState.Running, VmState.Active)] // virsh start
    [InlineData(VmState.Stopped, PowerState.Shutdown, VmState.Stopped)]
    [InlineData(VmState.Stopped, PowerState.NoState, VmState.Error)]
    [InlineData(VmState.Suspended, PowerState.Running, VmState.Active)]
    [InlineData(VmState.Suspended, PowerState.Shutdown, VmState.Stopped)]
    [InlineData(VmState.Suspended, PowerState.Suspended, VmState.Suspended)]
    [InlineData(VmState.Rescued, PowerState.Shutdown, VmState.Rescued)]
    [InlineData(VmState.Resized, PowerState.Paused, VmState.Resized)]
    [InlineData(VmState.Building, PowerState.Shutdown, VmState.Building)]
    [InlineData(VmState.SoftDeleted, PowerState.Running, VmState.SoftDeleted)]
    [InlineData(VmState.Error, PowerState.Running, VmState.Error)]
    [InlineData(VmState.Deleted, PowerState.NoState, VmState.Deleted)]
    public void Unexplained_power_changes_move_the_vm_state_as_nova_power_sync_does(VmState before, PowerState power, VmState after) =>
        Assert.Equal(after, PowerSyncRules.Reconcile(before, power));

    [Theory]
    [InlineData(VmState.Active)]
    [InlineData(VmState.Paused)]
    [InlineData(VmState.Stopped)]
    public void A_crash_keeps_the_vm_state_when_the_host_restarts_crashed_guests(VmState before) =>
        Assert.Equal(before, PowerSyncRules.Reconcile(before, PowerState.Crashed, restartCrashed: true));

    // Issue 13 item 1: only an ERROR that power sync itself caused heals, and only to a running guest.
    [Theory]
    [InlineData(PowerState.Running, true, VmState.Active)]
    [InlineData(PowerState.Running, false, VmState.Error)] // a failed task's ERROR stays
    [InlineData(PowerState.Shutdown, true, VmState.Error)]
    [InlineData(PowerState.Paused, true, VmState.Error)]
    [InlineData(PowerState.NoState, true, VmState.Error)]
    public void An_error_power_sync_caused_heals_only_when_the_guest_runs_again(PowerState power, bool errorFromPowerSync, VmState after) =>
        Assert.Equal(after, PowerSyncRules.Reconcile(VmState.Error, power, errorFromPowerSync: errorFromPowerSync));
}
