using ComputeAgent.Instances.StateModel;
using Xunit;

namespace ComputeAgent.Instances.Tests.StateModel;

/// <summary>Every command × every vm_state × every task_state (none and each one in flight) against <see cref="DesignTable"/>.</summary>
public sealed class CommandRulesCrossProductTests
{
    public static TheoryData<InstanceCommand, VmState> CommandsAndVmStates()
    {
        var data = new TheoryData<InstanceCommand, VmState>();
        foreach (var command in Enum.GetValues<InstanceCommand>().Where(c => c != InstanceCommand.Spawn))
        {
            foreach (var vmState in Enum.GetValues<VmState>())
            {
                data.Add(command, vmState);
            }
        }

        return data;
    }

    [Fact]
    public void The_expectation_covers_every_command_once()
    {
        Assert.Equal(Enum.GetValues<InstanceCommand>(), DesignTable.Rows.Select(row => row.Command));
    }

    [Theory]
    [MemberData(nameof(CommandsAndVmStates))]
    public void Decision_matches_design_table_for_every_task_state(InstanceCommand command, VmState vmState)
    {
        var row = DesignTable.For(command);
        foreach (var taskState in Enum.GetValues<TaskState>())
        {
            var decision = CommandRules.Decide(command, vmState, taskState);
            var where = $"{command} from ({vmState}, {taskState})";
            var expectAccepted = DesignTable.Accepts(command, vmState, taskState);
            Assert.True(expectAccepted == decision.IsAccepted, $"{where}: expected {(expectAccepted ? "accepted" : "refused")}, got {decision.Outcome}");
            Assert.Equal(command, decision.Command);
            Assert.Equal(vmState, decision.VmState);
            Assert.Equal(taskState, decision.TaskState);

            if (!decision.IsAccepted)
            {
                Assert.Equal(DecisionOutcome.Refused, decision.Outcome);
                Assert.False(decision.Preempts, where);
                var message = decision.RefusalMessage;
                Assert.NotNull(message);
                Assert.StartsWith($"cannot {row.Name}: instance is {DesignTable.Spelled(vmState)} (task_state {DesignTable.Spelled(taskState)}); ", message, StringComparison.Ordinal);
                Assert.EndsWith($"; allowed now: {ExpectedAllowedText(vmState, taskState)}", message, StringComparison.Ordinal);
                continue;
            }

            var plan = decision.Plan;
            Assert.Equal(DecisionOutcome.Accepted, decision.Outcome);
            Assert.Null(decision.RefusalMessage);
            Assert.Equal(command, plan.Command);
            Assert.Equal(vmState, plan.From);
            Assert.True(decision.Preempts == (taskState != TaskState.None), $"{where}: Preempts {decision.Preempts}");

            var confirmsFirst = vmState == VmState.Resized && DesignTable.ConfirmPendingResizeFirst.Contains(command);
            Assert.True(confirmsFirst == plan.ConfirmsPendingResize, $"{where}: ConfirmsPendingResize {plan.ConfirmsPendingResize}");
            TaskState[] expectedTasks = confirmsFirst ? [TaskState.ResizeConfirming, .. row.TaskStates] : row.TaskStates;
            Assert.Equal(expectedTasks, plan.TaskStates);

            // The vm_state recorded when the pause began (any state pause accepts; from RESIZED it
            // confirms first, so ACTIVE or STOPPED), or when the resize began (ACTIVE or STOPPED).
            VmState[] recordedCandidates = command == InstanceCommand.Unpause
                ? [VmState.Active, VmState.Stopped, VmState.Rescued]
                : [VmState.Active, VmState.Stopped];
            foreach (var recorded in recordedCandidates)
            {
                Assert.True(
                    row.After(vmState, recorded) == plan.VmStateAfter.Resolve(recorded),
                    $"{where} (recorded {recorded}): expected {row.After(vmState, recorded)}, got {plan.VmStateAfter.Resolve(recorded)}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(VmStates))]
    public void Spawn_of_an_existing_uuid_answers_with_the_instance_and_starts_nothing(VmState vmState)
    {
        foreach (var taskState in Enum.GetValues<TaskState>())
        {
            var decision = CommandRules.Decide(InstanceCommand.Spawn, vmState, taskState);
            Assert.Equal(DecisionOutcome.AlreadyExists, decision.Outcome);
            Assert.False(decision.IsAccepted);
            Assert.Null(decision.Plan);
            Assert.Null(decision.RefusalMessage);
        }
    }

    public static TheoryData<VmState> VmStates() => [.. Enum.GetValues<VmState>()];

    [Fact]
    public void Spawn_of_a_new_uuid_runs_the_four_build_steps_from_building_to_active()
    {
        var row = DesignTable.For(InstanceCommand.Spawn);
        var plan = CommandRules.SpawnPlan;
        Assert.Equal(InstanceCommand.Spawn, plan.Command);
        Assert.Equal(VmState.Building, plan.From);
        Assert.Equal(row.TaskStates, plan.TaskStates);
        Assert.Equal(row.After(VmState.Building, VmState.Building), plan.VmStateAfter.Resolve(VmState.Building));
        Assert.False(plan.ConfirmsPendingResize);
    }

    [Fact]
    public void Confirm_and_revert_refuse_a_recorded_pre_resize_state_a_resize_cannot_start_from()
    {
        var plan = CommandRules.Decide(InstanceCommand.ConfirmResize, VmState.Resized, TaskState.None).Plan!;
        Assert.Throws<ArgumentOutOfRangeException>(() => plan.VmStateAfter.Resolve(VmState.Paused));
        Assert.Throws<ArgumentOutOfRangeException>(() => plan.VmStateAfter.Resolve(VmState.Resized));
    }

    [Fact]
    public void Values_outside_the_enums_are_rejected_not_decided()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CommandRules.Decide((InstanceCommand)99, VmState.Active, TaskState.None));
        Assert.Throws<ArgumentOutOfRangeException>(() => CommandRules.Decide(InstanceCommand.Pause, (VmState)(-1), TaskState.None));
        Assert.Throws<ArgumentOutOfRangeException>(() => CommandRules.Decide(InstanceCommand.Pause, VmState.Active, (TaskState)31));
        Assert.Throws<ArgumentOutOfRangeException>(() => CommandRules.AllowedCommands((VmState)10, TaskState.None));
    }

    private static string ExpectedAllowedText(VmState vmState, TaskState taskState)
    {
        var names = DesignTable.Rows.Where(row => DesignTable.Accepts(row.Command, vmState, taskState)).Select(row => row.Name).ToList();
        return names.Count == 0 ? "nothing" : string.Join(", ", names);
    }
}
