using ComputeAgent.Instances.StateModel;
using Xunit;

namespace ComputeAgent.Instances.Tests.StateModel;

/// <summary>What an operator reads in grpcurl's FAILED_PRECONDITION: the states, why, and what would work now.</summary>
public sealed class RefusalMessageTests
{
    [Theory]
    [InlineData(InstanceCommand.Pause, VmState.Suspended, TaskState.None,
        "cannot pause: instance is SUSPENDED (task_state none); pause needs vm_state ACTIVE, STOPPED, RESCUED or RESIZED; allowed now: resume, delete")]
    [InlineData(InstanceCommand.Start, VmState.Active, TaskState.None,
        "cannot start: instance is ACTIVE (task_state none); start needs vm_state STOPPED; allowed now: pause, suspend, rescue, set admin password, rebuild, soft delete, delete, backup, snapshot, stop, soft reboot, hard reboot, resize")]
    [InlineData(InstanceCommand.Pause, VmState.Active, TaskState.Suspending,
        "cannot pause: instance is ACTIVE (task_state SUSPENDING); SUSPENDING is in flight and only delete may interrupt it; allowed now: delete")]
    [InlineData(InstanceCommand.Unpause, VmState.Active, TaskState.RebootingHard,
        "cannot unpause: instance is ACTIVE (task_state REBOOTING_HARD); unpause needs vm_state PAUSED, and REBOOTING_HARD is in flight; allowed now: delete")]
    [InlineData(InstanceCommand.Delete, VmState.Deleted, TaskState.None,
        "cannot delete: instance is DELETED (task_state none); delete needs any vm_state but DELETED; allowed now: nothing")]
    [InlineData(InstanceCommand.ForceDelete, VmState.Error, TaskState.None,
        "cannot force delete: instance is ERROR (task_state none); force delete needs vm_state SOFT_DELETED; allowed now: soft delete, delete")]
    [InlineData(InstanceCommand.RebootHard, VmState.Building, TaskState.BlockDeviceMapping,
        "cannot hard reboot: instance is BUILDING (task_state BLOCK_DEVICE_MAPPING); hard reboot needs vm_state ACTIVE, STOPPED, RESCUED or RESIZED, and BLOCK_DEVICE_MAPPING is in flight; allowed now: delete")]
    public void Refusal_names_the_states_the_reason_and_the_commands_allowed_now(InstanceCommand command, VmState vmState, TaskState taskState, string expected)
    {
        var decision = CommandRules.Decide(command, vmState, taskState);
        Assert.Equal(DecisionOutcome.Refused, decision.Outcome);
        Assert.Equal(expected, decision.RefusalMessage);
    }

    [Fact]
    public void Every_refusal_is_one_line_naming_its_command_and_states()
    {
        foreach (var command in Enum.GetValues<InstanceCommand>())
        {
            foreach (var vmState in Enum.GetValues<VmState>())
            {
                foreach (var taskState in Enum.GetValues<TaskState>())
                {
                    var message = CommandRules.Decide(command, vmState, taskState).RefusalMessage;
                    if (message is null)
                    {
                        continue;
                    }

                    Assert.DoesNotContain('\n', message);
                    Assert.Contains(DesignTable.Spelled(vmState), message, StringComparison.Ordinal);
                    Assert.Contains($"task_state {DesignTable.Spelled(taskState)}", message, StringComparison.Ordinal);
                    Assert.Contains("allowed now: ", message, StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public void Accepted_decisions_have_no_refusal_message()
    {
        Assert.Null(CommandRules.Decide(InstanceCommand.Delete, VmState.Building, TaskState.Spawning).RefusalMessage);
        Assert.Null(CommandRules.Decide(InstanceCommand.Resume, VmState.Suspended, TaskState.None).RefusalMessage);
    }
}
