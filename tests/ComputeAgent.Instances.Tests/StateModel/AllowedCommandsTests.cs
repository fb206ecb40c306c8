using ComputeAgent.Instances.StateModel;
using Xunit;
using static ComputeAgent.Instances.StateModel.InstanceCommand;

namespace ComputeAgent.Instances.Tests.StateModel;

public sealed class AllowedCommandsTests
{
    // design.md §2's table read by column: what each vm_state accepts with no task in flight,
    // in the table's row order. Typed by hand.
    public static TheoryData<VmState, InstanceCommand[]> Idle() => new()
    {
        { VmState.Building, [Delete] },
        { VmState.Active, [Pause, Suspend, Rescue, SetAdminPassword, Rebuild, SoftDelete, Delete, Backup, Snapshot, Stop, RebootSoft, RebootHard, Resize] },
        { VmState.Paused, [Unpause, Delete] },
        { VmState.Suspended, [Resume, Delete] },
        { VmState.Stopped, [Pause, Suspend, Rescue, Rebuild, SoftDelete, Delete, Backup, Snapshot, Start, Stop, RebootSoft, RebootHard, Resize] },
        { VmState.Rescued, [Pause, Unrescue, Delete, Stop, RebootSoft, RebootHard] },
        { VmState.Resized, [Pause, Rescue, Rebuild, Delete, Stop, RebootSoft, RebootHard, Resize, ConfirmResize, RevertResize] },
        { VmState.SoftDeleted, [Restore, ForceDelete, Delete] },
        { VmState.Deleted, [] },
        { VmState.Error, [SoftDelete, Delete] },
    };

    [Theory]
    [MemberData(nameof(Idle))]
    public void With_no_task_in_flight_each_vm_state_allows_its_column_of_the_table(VmState vmState, InstanceCommand[] expected)
    {
        Assert.Equal(expected, CommandRules.AllowedCommands(vmState, TaskState.None));
    }

    [Theory]
    [MemberData(nameof(VmStates))]
    public void With_a_task_in_flight_only_delete_is_allowed_and_never_on_a_deleted_instance(VmState vmState)
    {
        InstanceCommand[] expected = vmState == VmState.Deleted ? [] : [Delete];
        foreach (var taskState in Enum.GetValues<TaskState>().Where(t => t != TaskState.None))
        {
            Assert.Equal(expected, CommandRules.AllowedCommands(vmState, taskState));
        }
    }

    public static TheoryData<VmState> VmStates() => [.. Enum.GetValues<VmState>()];

    [Fact]
    public void Allowed_commands_are_exactly_those_decide_accepts()
    {
        foreach (var vmState in Enum.GetValues<VmState>())
        {
            foreach (var taskState in Enum.GetValues<TaskState>())
            {
                var accepted = Enum.GetValues<InstanceCommand>().Where(c => CommandRules.Decide(c, vmState, taskState).IsAccepted);
                Assert.Equal(accepted, CommandRules.AllowedCommands(vmState, taskState));
            }
        }
    }

    [Fact]
    public void Deciding_and_listing_allocate_nothing()
    {
        var commands = Enum.GetValues<InstanceCommand>();
        var vmStates = Enum.GetValues<VmState>();
        var taskStates = Enum.GetValues<TaskState>();
        var accepted = Sweep(commands, vmStates, taskStates); // warm up: static tables, JIT

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 20; i++)
        {
            accepted += Sweep(commands, vmStates, taskStates);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.True(accepted > 0);
    }

    private static int Sweep(InstanceCommand[] commands, VmState[] vmStates, TaskState[] taskStates)
    {
        var accepted = 0;
        foreach (var vmState in vmStates)
        {
            foreach (var taskState in taskStates)
            {
                accepted += CommandRules.AllowedCommands(vmState, taskState).Length;
                foreach (var command in commands)
                {
                    var decision = CommandRules.Decide(command, vmState, taskState);
                    if (decision.IsAccepted)
                    {
                        accepted += decision.Plan.TaskStates.Length;
                    }
                }
            }
        }

        return accepted;
    }
}
