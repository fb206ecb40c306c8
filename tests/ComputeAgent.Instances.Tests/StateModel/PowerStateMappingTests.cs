using ComputeAgent.Instances.StateModel;
using ComputeAgent.Libvirt;
using Xunit;

namespace ComputeAgent.Instances.Tests.StateModel;

public sealed class PowerStateMappingTests
{
    [Fact]
    public void No_domain_is_nostate()
    {
        Assert.Equal(PowerState.NoState, PowerStateMapping.FromLibvirt(null));
    }

    // design.md §2: NOSTATE→NOSTATE, RUNNING/BLOCKED→RUNNING, PAUSED→PAUSED, SHUTDOWN/SHUTOFF→SHUTDOWN,
    // CRASHED→CRASHED, PMSUSPENDED→SUSPENDED (SHUTOFF's reasons are covered below).
    [Theory]
    [InlineData(DomainState.NoState, PowerState.NoState)]
    [InlineData(DomainState.Running, PowerState.Running)]
    [InlineData(DomainState.Blocked, PowerState.Running)]
    [InlineData(DomainState.Paused, PowerState.Paused)]
    [InlineData(DomainState.Shutdown, PowerState.Shutdown)]
    [InlineData(DomainState.Crashed, PowerState.Crashed)]
    [InlineData(DomainState.PmSuspended, PowerState.Suspended)]
    public void Each_libvirt_state_maps_whatever_its_reason(DomainState state, PowerState expected)
    {
        // Only SHUTOFF's reason matters; try every reason number libvirt uses for any state.
        for (var reason = 0; reason <= 13; reason++)
        {
            Assert.Equal(expected, PowerStateMapping.FromLibvirt(new DomainStateInfo(state, reason)));
        }
    }

    [Theory]
    [InlineData(DomainShutoffReason.Unknown, PowerState.Shutdown)]
    [InlineData(DomainShutoffReason.Shutdown, PowerState.Shutdown)]
    [InlineData(DomainShutoffReason.Destroyed, PowerState.Shutdown)]
    [InlineData(DomainShutoffReason.Crashed, PowerState.Crashed)] // QEMU died under the guest
    [InlineData(DomainShutoffReason.Migrated, PowerState.Shutdown)]
    [InlineData(DomainShutoffReason.Saved, PowerState.Suspended)]
    [InlineData(DomainShutoffReason.Failed, PowerState.Crashed)] // kill -9 of QEMU reads as FAILED
    [InlineData(DomainShutoffReason.FromSnapshot, PowerState.Shutdown)]
    [InlineData(DomainShutoffReason.Daemon, PowerState.Shutdown)]
    public void Shutoff_is_shutdown_unless_a_managed_save_image_exists_or_qemu_died(DomainShutoffReason reason, PowerState expected)
    {
        Assert.Equal(expected, PowerStateMapping.FromLibvirt(new DomainStateInfo(DomainState.Shutoff, (int)reason)));
    }

    [Fact]
    public void Every_libvirt_state_and_shutoff_reason_is_covered_above()
    {
        // A libvirt enum member added later must get a row above.
        Assert.Equal(8, Enum.GetValues<DomainState>().Length);
        Assert.Equal(9, Enum.GetValues<DomainShutoffReason>().Length);
    }

    [Fact]
    public void A_state_newer_than_this_code_is_nostate()
    {
        Assert.Equal(PowerState.NoState, PowerStateMapping.FromLibvirt(new DomainStateInfo((DomainState)8, 0)));
    }

    [Theory]
    [InlineData(PowerState.NoState, 0, "NOSTATE")]
    [InlineData(PowerState.Running, 1, "RUNNING")]
    [InlineData(PowerState.Paused, 3, "PAUSED")]
    [InlineData(PowerState.Shutdown, 4, "SHUTDOWN")]
    [InlineData(PowerState.Crashed, 6, "CRASHED")]
    [InlineData(PowerState.Suspended, 7, "SUSPENDED")]
    public void Power_states_carry_novas_numbers_and_names(PowerState state, int novaValue, string name)
    {
        Assert.Equal(novaValue, (int)state);
        Assert.Equal(name, state.ToDisplayName());
    }
}
