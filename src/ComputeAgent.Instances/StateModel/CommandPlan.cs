using System.Collections.Immutable;

namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// What an accepted command does to the instance's states when started from <see cref="From"/>.
/// One shared, precomputed object per (command, vm_state): deciding never allocates.
/// </summary>
public sealed class CommandPlan
{
    internal CommandPlan(InstanceCommand command, VmState from, ImmutableArray<TaskState> taskStates, VmStateAfter vmStateAfter, bool confirmsPendingResize)
    {
        Command = command;
        From = from;
        TaskStates = taskStates;
        VmStateAfter = vmStateAfter;
        ConfirmsPendingResize = confirmsPendingResize;
    }

    public InstanceCommand Command { get; }

    /// <summary>The vm_state the command starts from (BUILDING for spawn: a new instance's first state).</summary>
    public VmState From { get; }

    /// <summary>
    /// Every task_state the instance passes through, in order; task_state is None again when it ends.
    /// When <see cref="ConfirmsPendingResize"/>, the first is RESIZE_CONFIRMING, after which vm_state
    /// is the pre-resize one while the command's own steps run.
    /// </summary>
    public ImmutableArray<TaskState> TaskStates { get; }

    public VmStateAfter VmStateAfter { get; }

    /// <summary>Started from RESIZED, the command first confirms the pending resize (design.md §2, "Resize Verify").</summary>
    public bool ConfirmsPendingResize { get; }

    public override string ToString() =>
        $"{Command.ToDisplayName()} from {From.ToDisplayName()}: {string.Join(" → ", TaskStates.Select(StateNames.ToDisplayName))} then {VmStateAfter}";
}
