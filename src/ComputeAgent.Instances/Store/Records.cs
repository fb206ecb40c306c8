using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Instances.Store;

/// <summary>What a revert of a pending resize needs.</summary>
/// <param name="Spec">The spec before the resize (the old flavor).</param>
/// <param name="SavedFiles">What the resize set aside to restore on revert, e.g. "disk" → the saved overlay's path.</param>
public sealed record PreResizeState(InstanceSpec Spec, IReadOnlyDictionary<string, string> SavedFiles);

/// <summary>One instance's row.</summary>
public sealed record InstanceRecord(
    Guid Uuid,
    string Name,
    InstanceSpec Spec,
    VmState VmState,
    TaskState TaskState,
    PowerState PowerState,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    VmState? VmStateBeforeTask,
    PreResizeState? PreResize,
    string? PreRescueXml,
    DateTimeOffset? DeletedAt);

/// <summary>One entry of the event log. The old states are null for the change that created the instance.</summary>
public sealed record EventRecord(
    long Seq,
    Guid Uuid,
    VmState? OldVmState,
    VmState NewVmState,
    TaskState? OldTaskState,
    TaskState NewTaskState,
    PowerState? OldPowerState,
    PowerState NewPowerState,
    string Cause,
    DateTimeOffset CreatedAt);

/// <summary>A recorded fault of an instance.</summary>
public sealed record FaultRecord(long Id, Guid Uuid, string Code, string Message, string? Details, DateTimeOffset CreatedAt);

/// <summary>A task in flight (one per instance), as recovery at start finds it.</summary>
/// <param name="Step">The task_state it had reached.</param>
/// <param name="Created">What it had created so far, to finish or remove.</param>
public sealed record TaskJournalEntry(Guid Uuid, InstanceCommand Command, TaskState Step, DateTimeOffset StartedAt, IReadOnlyDictionary<string, string> Created);
