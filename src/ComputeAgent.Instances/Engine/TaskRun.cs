using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// One accepted command as the driver sees it while it runs: the instance, the plan, and the two
/// things it reports back (the next task_state step, what it has created so far for the journal).
/// </summary>
public sealed class TaskRun
{
    private readonly Func<TaskState, CancellationToken, Task> advance;
    private readonly Func<string, string?, CancellationToken, Task> journal;

    internal TaskRun(InstanceRecord record, CommandPlan plan, VmState vmStateBefore, Func<TaskState, CancellationToken, Task> advance, Func<string, string?, CancellationToken, Task> journal)
    {
        Record = record;
        Uuid = record.Uuid;
        Spec = record.Spec;
        Plan = plan;
        VmStateBefore = vmStateBefore;
        this.advance = advance;
        this.journal = journal;
    }

    public Guid Uuid { get; }

    /// <summary>The instance's record when the command was accepted (its pre-rescue XML, its pending resize).</summary>
    public InstanceRecord Record { get; }

    /// <summary>Resize: the instance's spec with the new flavor.</summary>
    public InstanceSpec? NewSpec { get; init; }

    /// <summary>What the command needs beyond the instance (rebuild's image, the password, the snapshot's target).</summary>
    public CommandInput Input { get; init; } = CommandInput.None;

    /// <summary>Rescue: the original domain XML, to bring back on unrescue.</summary>
    public string? SavedDomainXml { get; set; }

    /// <summary>Resize: what it set aside for a revert (e.g. "disk" → the pre-resize overlay).</summary>
    public IReadOnlyDictionary<string, string>? SavedFiles { get; set; }

    public InstanceSpec Spec { get; }

    public CommandPlan Plan { get; }

    /// <summary>The vm_state the instance was in when the command was accepted.</summary>
    public VmState VmStateBefore { get; }

    /// <summary>Moves to the plan's next task_state (committed and published before it returns).</summary>
    public Task AdvanceAsync(TaskState next, CancellationToken cancellationToken) => advance(next, cancellationToken);

    /// <summary>Records in the task journal that <paramref name="key"/> now exists (null: no longer), so a crash can clean it up.</summary>
    public Task JournalAsync(string key, string? value, CancellationToken cancellationToken) => journal(key, value, cancellationToken);
}
