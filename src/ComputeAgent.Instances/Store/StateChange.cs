using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// One committed step of an instance's life: its new states, why, and whatever else changes with
/// them. <see cref="InstanceStore.CommitAsync"/> writes it in one transaction and appends an event
/// when the states differ from the stored ones.
/// </summary>
/// <param name="Uuid">The instance.</param>
/// <param name="VmState">vm_state after the change.</param>
/// <param name="TaskState">task_state after the change (None when no task is in flight).</param>
/// <param name="PowerState">power_state after the change.</param>
/// <param name="Cause">Why, for the event log: the command and step, or the libvirt event, or "reconcile".</param>
public sealed record StateChange(Guid Uuid, VmState VmState, TaskState TaskState, PowerState PowerState, string Cause)
{
    /// <summary>
    /// The instance's inputs. Required for a UUID with no record (that change creates it); on an
    /// existing instance it replaces the stored spec (rebuild, resize, revert). Null keeps it.
    /// </summary>
    public InstanceSpec? Spec { get; init; }

    /// <summary>The vm_state a task started from (the state a pause came from, the pre-resize vm_state).</summary>
    public ColumnUpdate<VmState?> VmStateBeforeTask { get; init; }

    /// <summary>What a revert of a pending resize needs: the old spec (flavor) and the saved disks.</summary>
    public ColumnUpdate<PreResizeState?> PreResize { get; init; }

    /// <summary>The original domain XML, kept while the rescue domain runs.</summary>
    public ColumnUpdate<string?> PreRescueXml { get; init; }

    /// <summary>When the instance was deleted; a set value hides it from <see cref="InstanceStore.ListInstancesAsync"/> without includeDeleted.</summary>
    public ColumnUpdate<DateTimeOffset?> DeletedAt { get; init; }

    /// <summary>What happens to the instance's task journal entry; keeping it moves its step to <see cref="TaskState"/>.</summary>
    public JournalChange Journal { get; init; }

    /// <summary>A fault to record with the change (a failed or interrupted task).</summary>
    public Fault? Fault { get; init; }
}

/// <summary>
/// An optional column update: <c>default</c> keeps the stored value, <c>new(value)</c> sets it
/// (<c>new(null)</c> clears it). Needed because "no change" and "set to null" differ.
/// </summary>
public readonly record struct ColumnUpdate<T>
{
    public ColumnUpdate(T value)
    {
        IsSet = true;
        Value = value;
    }

    public bool IsSet { get; }

    public T Value { get; }
}

/// <summary>What a <see cref="StateChange"/> does to the instance's task journal entry.</summary>
public enum JournalAction
{
    /// <summary>Leave the entry (its step follows task_state).</summary>
    Keep = 0,

    /// <summary>Write the entry: the task and what it has created so far.</summary>
    Set = 1,

    /// <summary>The task ended (done or rolled back): remove the entry.</summary>
    Clear = 2,
}

/// <summary>The journal part of a <see cref="StateChange"/>; <c>default</c> keeps the entry.</summary>
public readonly record struct JournalChange
{
    private JournalChange(JournalAction action, InstanceCommand command, IReadOnlyDictionary<string, string>? created)
    {
        Action = action;
        Command = command;
        Created = created;
    }

    public static JournalChange Keep => default;

    public static JournalChange Clear => new(JournalAction.Clear, default, null);

    public JournalAction Action { get; }

    /// <summary>The task in flight; meaningful for <see cref="JournalAction.Set"/>.</summary>
    public InstanceCommand Command { get; }

    /// <summary>What the task has created so far (e.g. "overlay" → path, "tap" → device, "domain" → "defined").</summary>
    public IReadOnlyDictionary<string, string>? Created { get; }

    /// <summary>
    /// Records <paramref name="command"/> in flight with what it has created so far; the step is the
    /// change's task_state. Setting the same command again keeps its started_at.
    /// </summary>
    public static JournalChange Set(InstanceCommand command, IReadOnlyDictionary<string, string> created)
    {
        ArgumentNullException.ThrowIfNull(created);
        return new(JournalAction.Set, command, created);
    }
}

/// <summary>A fault to record (Nova's instance fault): a short code, the message, and details such as a libvirt error.</summary>
public sealed record Fault(string Code, string Message, string? Details = null);
