using System.Collections.Immutable;
using static ComputeAgent.Instances.StateModel.InstanceCommand;
using static ComputeAgent.Instances.StateModel.TaskState;
using static ComputeAgent.Instances.StateModel.VmState;

namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// design.md §2's command table, and the only place that decides whether a command may run.
/// Every other part of the agent asks <see cref="Decide"/>; nothing else tests vm_state / task_state.
/// </summary>
public static class CommandRules
{
    private static readonly VmState[] AllButDeleted = [Building, Active, Paused, Suspended, Stopped, Rescued, Resized, SoftDeleted, Error];

    // design.md §2, row by row. ConfirmsPendingResize marks the commands design.md lists as first
    // confirming a pending resize when started from RESIZED; it means nothing for other vm_states.
    private static readonly CommandRule[] Table =
    [
        new(Spawn, [], [Scheduling, Networking, BlockDeviceMapping, Spawning], After.Is(Active)) { CreatesInstance = true },
        new(Pause, [Active, Stopped, Rescued, Resized], [Pausing], After.Is(Paused)) { ConfirmsPendingResize = true },
        new(Unpause, [Paused], [Unpausing], After.AsBeforePause),
        new(Suspend, [Active, Stopped], [Suspending], After.Is(Suspended)),
        new(Resume, [Suspended], [Resuming], After.Is(Active)),
        new(Rescue, [Active, Stopped, Resized], [Rescuing], After.Is(Rescued)) { ConfirmsPendingResize = true },
        new(Unrescue, [Rescued], [Unrescuing], After.Is(Active)),
        new(SetAdminPassword, [Active], [UpdatingPassword], After.Is(Active)),
        new(Rebuild, [Active, Stopped, Resized], [Rebuilding, RebuildSpawning], After.Is(Active)) { ConfirmsPendingResize = true },
        new(SoftDelete, [Active, Stopped, Error], [SoftDeleting], After.Is(SoftDeleted)),
        new(Restore, [SoftDeleted], [Restoring], After.Is(Active)),
        new(ForceDelete, [SoftDeleted], [Deleting], After.Is(Deleted)),
        new(Delete, AllButDeleted, [Deleting], After.Is(Deleted)) { PreemptsTasks = true },
        new(Backup, [Active, Stopped], [ImageBackup], After.Unchanged),
        new(Snapshot, [Active, Stopped], [ImageSnapshot, ImagePendingUpload, ImageUploading], After.Unchanged),
        new(Start, [Stopped], [PoweringOn], After.Is(Active)),
        new(Stop, [Active, Stopped, Rescued, Resized], [PoweringOff], After.Is(Stopped)) { ConfirmsPendingResize = true },
        new(RebootSoft, [Active, Stopped, Rescued, Resized], [Rebooting], After.ActiveUnlessRescued) { ConfirmsPendingResize = true },
        new(RebootHard, [Active, Stopped, Rescued, Resized], [RebootingHard], After.ActiveUnlessRescued) { ConfirmsPendingResize = true },
        new(Resize, [Active, Stopped, Resized], [ResizePrep, ResizeMigrating, ResizeMigrated, ResizeFinish], After.Is(Resized)) { ConfirmsPendingResize = true },
        new(ConfirmResize, [Resized], [ResizeConfirming], After.AsBeforeResize),
        new(RevertResize, [Resized], [ResizeReverting], After.AsBeforeResize),
    ];

    private static readonly int VmStateCount = Enum.GetValues<VmState>().Length;
    private static readonly int TaskStateCount = Enum.GetValues<TaskState>().Length;

    // Everything below is derived once from Table, so a decision is a few array reads.
    private static readonly CommandPlan?[] Plans = BuildPlans();
    private static readonly ImmutableArray<InstanceCommand>[] AllowedWhenIdle = BuildAllowed(taskInFlight: false);
    private static readonly ImmutableArray<InstanceCommand>[] AllowedWhenBusy = BuildAllowed(taskInFlight: true);
    private static readonly string[] AllowedWhenIdleText = AllowedWhenIdle.Select(JoinNames).ToArray();
    private static readonly string[] AllowedWhenBusyText = AllowedWhenBusy.Select(JoinNames).ToArray();
    private static readonly string[] RequirementText = Table.Select(DescribeRequirement).ToArray();
    private static readonly string PreemptingText = string.Join(" or ", Table.Where(r => r.PreemptsTasks).Select(r => r.Command.ToDisplayName()));

    /// <summary>The plan of a spawn for a UUID that has no instance yet.</summary>
    public static CommandPlan SpawnPlan { get; } = PlanFor(RuleOf(Spawn), Building);

    /// <summary>
    /// Whether <paramref name="command"/> may run on an instance now in (<paramref name="vmState"/>,
    /// <paramref name="taskState"/>), and if so how. Allocation-free.
    /// </summary>
    public static Decision Decide(InstanceCommand command, VmState vmState, TaskState taskState)
    {
        var rule = RuleOf(command);
        CheckRange(vmState, taskState);
        if (rule.CreatesInstance)
        {
            return Decision.Existing(command, vmState, taskState);
        }

        var plan = Plans[PlanIndex(command, vmState)];
        return plan is not null && (taskState == None || rule.PreemptsTasks)
            ? Decision.Accept(plan, taskState)
            : Decision.Refuse(command, vmState, taskState);
    }

    /// <summary>The commands <see cref="Decide"/> would accept now, in design.md's row order (spawn is never among them).</summary>
    public static ImmutableArray<InstanceCommand> AllowedCommands(VmState vmState, TaskState taskState)
    {
        CheckRange(vmState, taskState);
        return taskState == None ? AllowedWhenIdle[(int)vmState] : AllowedWhenBusy[(int)vmState];
    }

    internal static string DescribeRefusal(InstanceCommand command, VmState vmState, TaskState taskState)
    {
        var rule = RuleOf(command);
        CheckRange(vmState, taskState);
        var why = taskState != None && !rule.PreemptsTasks && Plans[PlanIndex(command, vmState)] is not null
            ? $"{taskState.ToDisplayName()} is in flight and only {PreemptingText} may interrupt it"
            : taskState != None && !rule.PreemptsTasks
                ? $"{RequirementText[(int)command]}, and {taskState.ToDisplayName()} is in flight"
                : RequirementText[(int)command];
        var allowed = taskState == None ? AllowedWhenIdleText[(int)vmState] : AllowedWhenBusyText[(int)vmState];
        return $"cannot {command.ToDisplayName()}: instance is {vmState.ToDisplayName()} (task_state {taskState.ToDisplayName()}); {why}; allowed now: {allowed}";
    }

    private static CommandRule RuleOf(InstanceCommand command) =>
        (uint)command < (uint)Table.Length ? Table[(int)command] : throw new ArgumentOutOfRangeException(nameof(command), command, "not an instance command");

    private static void CheckRange(VmState vmState, TaskState taskState)
    {
        if ((uint)vmState >= (uint)VmStateCount)
        {
            throw new ArgumentOutOfRangeException(nameof(vmState), vmState, "not a vm_state");
        }

        if ((uint)taskState >= (uint)TaskStateCount)
        {
            throw new ArgumentOutOfRangeException(nameof(taskState), taskState, "not a task_state");
        }
    }

    private static int PlanIndex(InstanceCommand command, VmState vmState) => ((int)command * VmStateCount) + (int)vmState;

    private static CommandPlan?[] BuildPlans()
    {
        var plans = new CommandPlan?[Table.Length * VmStateCount];
        for (var i = 0; i < Table.Length; i++)
        {
            // The table is indexed by command: a row out of place would silently answer for another command.
            if ((int)Table[i].Command != i)
            {
                throw new InvalidOperationException($"command table row {i} is {Table[i].Command}, not {(InstanceCommand)i}");
            }

            foreach (var from in Table[i].AcceptedFrom)
            {
                plans[PlanIndex(Table[i].Command, from)] = PlanFor(Table[i], from);
            }
        }

        return plans;
    }

    private static CommandPlan PlanFor(CommandRule rule, VmState from)
    {
        var confirmsFirst = from == VmState.Resized && rule.ConfirmsPendingResize;
        var taskStates = confirmsFirst ? [ResizeConfirming, .. rule.TaskStates] : rule.TaskStates;
        return new CommandPlan(rule.Command, from, taskStates, rule.After.From(from), confirmsFirst);
    }

    private static ImmutableArray<InstanceCommand>[] BuildAllowed(bool taskInFlight)
    {
        var allowed = new ImmutableArray<InstanceCommand>[VmStateCount];
        for (var vmState = 0; vmState < VmStateCount; vmState++)
        {
            allowed[vmState] = [.. Table
                .Where(rule => !rule.CreatesInstance && (!taskInFlight || rule.PreemptsTasks) && Plans[PlanIndex(rule.Command, (VmState)vmState)] is not null)
                .Select(rule => rule.Command)];
        }

        return allowed;
    }

    private static string JoinNames(ImmutableArray<InstanceCommand> commands) =>
        commands.IsEmpty ? "nothing" : string.Join(", ", commands.Select(StateNames.ToDisplayName));

    private static string DescribeRequirement(CommandRule rule)
    {
        var name = rule.Command.ToDisplayName();
        if (rule.CreatesInstance)
        {
            return $"{name} needs a UUID with no instance";
        }

        var refusedFrom = Enum.GetValues<VmState>().Except(rule.AcceptedFrom).ToArray();
        // "any vm_state but DELETED" reads better than a list of nine.
        return refusedFrom.Length < rule.AcceptedFrom.Length
            ? $"{name} needs any vm_state but {JoinStates(refusedFrom)}"
            : $"{name} needs vm_state {JoinStates(rule.AcceptedFrom)}";
    }

    private static string JoinStates(VmState[] states) => states.Length == 1
        ? states[0].ToDisplayName()
        : $"{string.Join(", ", states.Take(states.Length - 1).Select(StateNames.ToDisplayName))} or {states[^1].ToDisplayName()}";

    /// <summary>One row of the table.</summary>
    private sealed record CommandRule(InstanceCommand Command, VmState[] AcceptedFrom, ImmutableArray<TaskState> TaskStates, After After)
    {
        /// <summary>spawn: runs only for a UUID with no instance; for an existing one the answer is that instance.</summary>
        public bool CreatesInstance { get; init; }

        /// <summary>Accepted whatever the task_state, cancelling the task in flight (delete).</summary>
        public bool PreemptsTasks { get; init; }

        /// <summary>Started from RESIZED, first confirms the pending resize.</summary>
        public bool ConfirmsPendingResize { get; init; }
    }

    /// <summary>The table's "vm_state after" column as written; <see cref="From"/> resolves it per starting vm_state.</summary>
    private readonly record struct After(After.Kind What, VmState State)
    {
        public enum Kind
        {
            Is,
            Unchanged,
            ActiveUnlessRescued,
            AsBeforePause,
            AsBeforeResize,
        }

        public static After Unchanged => new(Kind.Unchanged, default);

        public static After ActiveUnlessRescued => new(Kind.ActiveUnlessRescued, default);

        public static After AsBeforePause => new(Kind.AsBeforePause, default);

        public static After AsBeforeResize => new(Kind.AsBeforeResize, default);

        public static After Is(VmState state) => new(Kind.Is, state);

        public VmStateAfter From(VmState from) => What switch
        {
            Kind.Is => VmStateAfter.Fixed(State),
            Kind.Unchanged => VmStateAfter.Fixed(from),
            Kind.ActiveUnlessRescued => VmStateAfter.Fixed(from == VmState.Rescued ? VmState.Rescued : Active),
            Kind.AsBeforePause => VmStateAfter.AsBeforePause,
            Kind.AsBeforeResize => VmStateAfter.AsBeforeResize,
            _ => throw new InvalidOperationException($"unknown kind {What}"),
        };
    }
}
