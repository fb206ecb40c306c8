using System.Diagnostics.CodeAnalysis;

namespace ComputeAgent.Instances.StateModel;

public enum DecisionOutcome
{
    /// <summary>Refused: nothing changes; the gRPC answer is FAILED_PRECONDITION with <see cref="Decision.RefusalMessage"/>.</summary>
    Refused = 0,

    /// <summary>Accepted: run <see cref="Decision.Plan"/>.</summary>
    Accepted = 1,

    /// <summary>spawn of a UUID that already has an instance: answer with that instance and start no second guest.</summary>
    AlreadyExists = 2,
}

/// <summary>The answer of <see cref="CommandRules.Decide"/>: a value, so deciding never allocates.</summary>
public readonly record struct Decision
{
    private Decision(DecisionOutcome outcome, InstanceCommand command, VmState vmState, TaskState taskState, CommandPlan? plan)
    {
        Outcome = outcome;
        Command = command;
        VmState = vmState;
        TaskState = taskState;
        Plan = plan;
    }

    public DecisionOutcome Outcome { get; }

    public InstanceCommand Command { get; }

    /// <summary>The vm_state the decision was made in.</summary>
    public VmState VmState { get; }

    /// <summary>The task_state the decision was made in.</summary>
    public TaskState TaskState { get; }

    /// <summary>What to run; set only when accepted.</summary>
    public CommandPlan? Plan { get; }

    [MemberNotNullWhen(true, nameof(Plan))]
    public bool IsAccepted => Plan is not null;

    /// <summary>Accepted while another task is in flight (only delete may): that task must be cancelled first.</summary>
    public bool Preempts => IsAccepted && TaskState != TaskState.None;

    /// <summary>For a refusal, the operator's explanation (formatted on each read); null otherwise.</summary>
    public string? RefusalMessage => Outcome == DecisionOutcome.Refused ? CommandRules.DescribeRefusal(Command, VmState, TaskState) : null;

    internal static Decision Accept(CommandPlan plan, TaskState taskState) => new(DecisionOutcome.Accepted, plan.Command, plan.From, taskState, plan);

    internal static Decision Refuse(InstanceCommand command, VmState vmState, TaskState taskState) => new(DecisionOutcome.Refused, command, vmState, taskState, null);

    internal static Decision Existing(InstanceCommand command, VmState vmState, TaskState taskState) => new(DecisionOutcome.AlreadyExists, command, vmState, taskState, null);
}
