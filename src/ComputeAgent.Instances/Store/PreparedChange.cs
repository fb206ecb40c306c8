using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// A <see cref="StateChange"/> checked and turned into column text on the caller's thread, so the
/// single writer only binds and executes (JSON serialization runs in parallel across callers).
/// </summary>
internal sealed class PreparedChange
{
    private PreparedChange(StateChange change)
    {
        Uuid = StoreText.Of(change.Uuid);
        VmState = change.VmState.ToDisplayName();
        TaskState = change.TaskState.ToDisplayName();
        PowerState = change.PowerState.ToDisplayName();
        Cause = change.Cause;
        Name = change.Spec?.Name;
        SpecJson = change.Spec is null ? null : StoreJson.Serialize(change.Spec);
        VmStateBeforeTask = Column(change.VmStateBeforeTask, v => v?.ToDisplayName());
        PreResizeJson = Column(change.PreResize, v => v is null ? null : StoreJson.Serialize(v));
        PreRescueXml = Column(change.PreRescueXml, v => v);
        DeletedAt = Column(change.DeletedAt, v => v is { } at ? StoreText.Of(at) : null);
        Journal = change.Journal.Action;
        JournalCommand = change.Journal.Action == JournalAction.Set ? change.Journal.Command.ToDisplayName() : null;
        JournalCreatedJson = change.Journal.Created is { } created ? StoreJson.Serialize(created) : null;
        Fault = change.Fault;
    }

    public string Uuid { get; }

    public string VmState { get; }

    public string TaskState { get; }

    public string PowerState { get; }

    public string Cause { get; }

    /// <summary>Set with <see cref="SpecJson"/>: the name column follows the spec.</summary>
    public string? Name { get; }

    public string? SpecJson { get; }

    public ColumnUpdate<string?> VmStateBeforeTask { get; }

    public ColumnUpdate<string?> PreResizeJson { get; }

    public ColumnUpdate<string?> PreRescueXml { get; }

    public ColumnUpdate<string?> DeletedAt { get; }

    public JournalAction Journal { get; }

    public string? JournalCommand { get; }

    public string? JournalCreatedJson { get; }

    public Fault? Fault { get; }

    public bool HasTask => TaskState != StateModel.TaskState.None.ToDisplayName();

    /// <summary>Checks what the database cannot (usage errors), then prepares the column values.</summary>
    public static PreparedChange From(StateChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        ArgumentException.ThrowIfNullOrWhiteSpace(change.Cause, nameof(change));
        if (change.Spec is { } spec && spec.Uuid != change.Uuid)
        {
            throw new ArgumentException($"the spec is of instance {spec.Uuid}, the change of {change.Uuid}", nameof(change));
        }

        if (change.Journal.Action == JournalAction.Set && change.TaskState == StateModel.TaskState.None)
        {
            throw new ArgumentException($"a task journal entry for {change.Journal.Command.ToDisplayName()} needs the task_state it is at, not none", nameof(change));
        }

        if (change.Fault is { } fault && (string.IsNullOrWhiteSpace(fault.Code) || string.IsNullOrWhiteSpace(fault.Message)))
        {
            throw new ArgumentException("a fault needs a code and a message", nameof(change));
        }

        return new PreparedChange(change);
    }

    private static ColumnUpdate<string?> Column<T>(ColumnUpdate<T> update, Func<T, string?> text) =>
        update.IsSet ? new ColumnUpdate<string?>(text(update.Value)) : default;
}
