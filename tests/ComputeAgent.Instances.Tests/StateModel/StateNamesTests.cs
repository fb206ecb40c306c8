using ComputeAgent.Instances.StateModel;
using Xunit;

namespace ComputeAgent.Instances.Tests.StateModel;

public sealed class StateNamesTests
{
    [Fact]
    public void Vm_and_task_states_are_named_as_design_md_spells_them()
    {
        Assert.All(Enum.GetValues<VmState>(), s => Assert.Equal(DesignTable.Spelled(s), s.ToDisplayName()));
        Assert.All(Enum.GetValues<TaskState>(), s => Assert.Equal(DesignTable.Spelled(s), s.ToDisplayName()));
    }

    [Fact]
    public void Command_names_are_design_md_s_and_distinct()
    {
        Assert.All(DesignTable.Rows, row => Assert.Equal(row.Name, row.Command.ToDisplayName()));
        Assert.Equal(22, Enum.GetValues<InstanceCommand>().Select(c => c.ToDisplayName()).Distinct().Count());
    }

    [Fact]
    public void Design_md_lists_thirty_task_states_besides_none_and_ten_vm_states()
    {
        Assert.Contains(TaskState.None, Enum.GetValues<TaskState>());
        Assert.Equal(30, Enum.GetValues<TaskState>().Count(s => s != TaskState.None));
        Assert.Equal(10, Enum.GetValues<VmState>().Length);
    }

    [Fact]
    public void Plans_read_as_their_table_row()
    {
        Assert.Equal(
            "pause from RESIZED: RESIZE_CONFIRMING → PAUSING then PAUSED",
            CommandRules.Decide(InstanceCommand.Pause, VmState.Resized, TaskState.None).Plan!.ToString());
        Assert.Equal(
            "unpause from PAUSED: UNPAUSING then ACTIVE (RESCUED if paused from RESCUED)",
            CommandRules.Decide(InstanceCommand.Unpause, VmState.Paused, TaskState.None).Plan!.ToString());
    }
}
