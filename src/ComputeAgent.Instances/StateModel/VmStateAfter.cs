namespace ComputeAgent.Instances.StateModel;

/// <summary>How a command's resulting vm_state is found.</summary>
public enum VmStateAfterRule
{
    /// <summary>Always <see cref="VmStateAfter.FixedState"/>.</summary>
    Fixed = 0,

    /// <summary>unpause: RESCUED if the instance was paused from RESCUED, otherwise ACTIVE.</summary>
    AsBeforePause = 1,

    /// <summary>confirm / revert resize: the vm_state the resize started from (ACTIVE or STOPPED).</summary>
    AsBeforeResize = 2,
}

/// <summary>
/// The vm_state a command leaves behind. Two rows of design.md §2 depend on history the current
/// (vm_state, task_state) pair does not hold, so the engine records the vm_state a pause or a resize
/// started from (after any confirmation of a pending resize) and passes it to <see cref="Resolve"/>.
/// </summary>
public readonly record struct VmStateAfter
{
    private VmStateAfter(VmStateAfterRule rule, VmState? fixedState)
    {
        Rule = rule;
        FixedState = fixedState;
    }

    public VmStateAfterRule Rule { get; }

    /// <summary>The resulting vm_state when <see cref="Rule"/> is Fixed; null otherwise.</summary>
    public VmState? FixedState { get; }

    public static VmStateAfter Fixed(VmState state) => new(VmStateAfterRule.Fixed, state);

    public static VmStateAfter AsBeforePause { get; } = new(VmStateAfterRule.AsBeforePause, null);

    public static VmStateAfter AsBeforeResize { get; } = new(VmStateAfterRule.AsBeforeResize, null);

    /// <summary>The resulting vm_state, given the vm_state recorded when the pause or resize began (ignored for Fixed).</summary>
    /// <exception cref="ArgumentOutOfRangeException">AsBeforeResize with a recorded state other than ACTIVE or STOPPED: a resize never starts from anything else.</exception>
    public VmState Resolve(VmState recorded) => Rule switch
    {
        VmStateAfterRule.Fixed => FixedState!.Value,
        VmStateAfterRule.AsBeforePause => recorded == VmState.Rescued ? VmState.Rescued : VmState.Active,
        VmStateAfterRule.AsBeforeResize => recorded is VmState.Active or VmState.Stopped
            ? recorded
            : throw new ArgumentOutOfRangeException(nameof(recorded), recorded, "a resize starts only from ACTIVE or STOPPED"),
        _ => throw new InvalidOperationException($"unknown rule {Rule}"),
    };

    public override string ToString() => Rule switch
    {
        VmStateAfterRule.Fixed => FixedState!.Value.ToDisplayName(),
        VmStateAfterRule.AsBeforePause => "ACTIVE (RESCUED if paused from RESCUED)",
        _ => "the vm_state before the resize (ACTIVE or STOPPED)",
    };
}
