using Microsoft.Data.Sqlite;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// The writer's statements, each prepared once on the writer's connection and re-bound per change.
/// One change is a handful of indexed single-row statements, so a batch costs one fsync-free WAL append.
/// </summary>
internal sealed class CommitStatements : IDisposable
{
    private readonly SqliteCommand readStates;
    private readonly SqliteCommand insertInstance;
    private readonly SqliteCommand updateInstance;
    private readonly SqliteCommand setJournal;
    private readonly SqliteCommand clearJournal;
    private readonly SqliteCommand stepJournal;
    private readonly SqliteCommand insertFault;
    private readonly SqliteCommand appendEvent;

    public CommitStatements(SqliteConnection connection)
    {
        readStates = Create(connection, "SELECT vm_state, task_state, power_state FROM instances WHERE uuid = $uuid", "$uuid");
        insertInstance = Create(connection, """
            INSERT INTO instances (uuid, name, spec_json, vm_state, task_state, power_state, created_at, updated_at,
                                   vm_state_before_task, pre_resize_json, pre_rescue_xml, deleted_at)
            VALUES ($uuid, $name, $spec_json, $vm_state, $task_state, $power_state, $now, $now,
                    $vm_state_before_task, $pre_resize_json, $pre_rescue_xml, $deleted_at)
            """, "$uuid", "$name", "$spec_json", "$vm_state", "$task_state", "$power_state", "$now",
            "$vm_state_before_task", "$pre_resize_json", "$pre_rescue_xml", "$deleted_at");
        // One statement for every combination of optional columns: a CASE per column keeps the
        // stored value unless its set flag is on (a SET list built per change would defeat preparing).
        updateInstance = Create(connection, """
            UPDATE instances SET
                vm_state = $vm_state, task_state = $task_state, power_state = $power_state, updated_at = $now,
                name = CASE WHEN $set_spec THEN $name ELSE name END,
                spec_json = CASE WHEN $set_spec THEN $spec_json ELSE spec_json END,
                vm_state_before_task = CASE WHEN $set_vm_state_before_task THEN $vm_state_before_task ELSE vm_state_before_task END,
                pre_resize_json = CASE WHEN $set_pre_resize_json THEN $pre_resize_json ELSE pre_resize_json END,
                pre_rescue_xml = CASE WHEN $set_pre_rescue_xml THEN $pre_rescue_xml ELSE pre_rescue_xml END,
                deleted_at = CASE WHEN $set_deleted_at THEN $deleted_at ELSE deleted_at END
            WHERE uuid = $uuid
            """, "$uuid", "$vm_state", "$task_state", "$power_state", "$now", "$set_spec", "$name", "$spec_json",
            "$set_vm_state_before_task", "$vm_state_before_task", "$set_pre_resize_json", "$pre_resize_json",
            "$set_pre_rescue_xml", "$pre_rescue_xml", "$set_deleted_at", "$deleted_at");
        // The same command again is the same task moving on: it keeps its start time.
        setJournal = Create(connection, """
            INSERT INTO task_journal (uuid, command, step, started_at, created_json)
            VALUES ($uuid, $command, $step, $now, $created_json)
            ON CONFLICT (uuid) DO UPDATE SET
                started_at = CASE WHEN command = excluded.command THEN started_at ELSE excluded.started_at END,
                command = excluded.command, step = excluded.step, created_json = excluded.created_json
            """, "$uuid", "$command", "$step", "$now", "$created_json");
        clearJournal = Create(connection, "DELETE FROM task_journal WHERE uuid = $uuid", "$uuid");
        stepJournal = Create(connection, "UPDATE task_journal SET step = $step WHERE uuid = $uuid", "$uuid", "$step");
        insertFault = Create(connection, """
            INSERT INTO faults (uuid, code, message, details, created_at) VALUES ($uuid, $code, $message, $details, $now)
            """, "$uuid", "$code", "$message", "$details", "$now");
        appendEvent = Create(connection, """
            INSERT INTO events (uuid, old_vm_state, new_vm_state, old_task_state, new_task_state, old_power_state, new_power_state, cause, created_at)
            VALUES ($uuid, $old_vm_state, $new_vm_state, $old_task_state, $new_task_state, $old_power_state, $new_power_state, $cause, $now)
            RETURNING seq
            """, "$uuid", "$old_vm_state", "$new_vm_state", "$old_task_state", "$new_task_state", "$old_power_state", "$new_power_state", "$cause", "$now");
    }

    private IEnumerable<SqliteCommand> All => [readStates, insertInstance, updateInstance, setJournal, clearJournal, stepJournal, insertFault, appendEvent];

    public void Enlist(SqliteTransaction transaction)
    {
        foreach (var command in All)
        {
            command.Transaction = transaction;
        }
    }

    public async Task<StoredStates?> ReadStatesAsync(PreparedChange change)
    {
        Bind(readStates, "$uuid", change.Uuid);
        var reader = await readStates.ExecuteReaderAsync().ConfigureAwait(false);
        await using (reader.ConfigureAwait(false))
        {
            return await reader.ReadAsync().ConfigureAwait(false)
                ? new StoredStates(reader.GetString(0), reader.GetString(1), reader.GetString(2))
                : null;
        }
    }

    public Task InsertInstanceAsync(PreparedChange change, string now)
    {
        Bind(insertInstance, "$uuid", change.Uuid);
        Bind(insertInstance, "$name", change.Name);
        Bind(insertInstance, "$spec_json", change.SpecJson);
        BindStates(insertInstance, change, now);
        Bind(insertInstance, "$vm_state_before_task", change.VmStateBeforeTask.Value);
        Bind(insertInstance, "$pre_resize_json", change.PreResizeJson.Value);
        Bind(insertInstance, "$pre_rescue_xml", change.PreRescueXml.Value);
        Bind(insertInstance, "$deleted_at", change.DeletedAt.Value);
        return insertInstance.ExecuteNonQueryAsync();
    }

    public Task UpdateInstanceAsync(PreparedChange change, string now)
    {
        Bind(updateInstance, "$uuid", change.Uuid);
        BindStates(updateInstance, change, now);
        Bind(updateInstance, "$set_spec", change.SpecJson is not null);
        Bind(updateInstance, "$name", change.Name);
        Bind(updateInstance, "$spec_json", change.SpecJson);
        BindColumn(updateInstance, "$set_vm_state_before_task", "$vm_state_before_task", change.VmStateBeforeTask);
        BindColumn(updateInstance, "$set_pre_resize_json", "$pre_resize_json", change.PreResizeJson);
        BindColumn(updateInstance, "$set_pre_rescue_xml", "$pre_rescue_xml", change.PreRescueXml);
        BindColumn(updateInstance, "$set_deleted_at", "$deleted_at", change.DeletedAt);
        return updateInstance.ExecuteNonQueryAsync();
    }

    public Task SetJournalAsync(PreparedChange change, string now)
    {
        Bind(setJournal, "$uuid", change.Uuid);
        Bind(setJournal, "$command", change.JournalCommand);
        Bind(setJournal, "$step", change.TaskState);
        Bind(setJournal, "$now", now);
        Bind(setJournal, "$created_json", change.JournalCreatedJson);
        return setJournal.ExecuteNonQueryAsync();
    }

    public Task ClearJournalAsync(PreparedChange change)
    {
        Bind(clearJournal, "$uuid", change.Uuid);
        return clearJournal.ExecuteNonQueryAsync();
    }

    public Task StepJournalAsync(PreparedChange change)
    {
        Bind(stepJournal, "$uuid", change.Uuid);
        Bind(stepJournal, "$step", change.TaskState);
        return stepJournal.ExecuteNonQueryAsync();
    }

    public Task InsertFaultAsync(PreparedChange change, Fault fault, string now)
    {
        Bind(insertFault, "$uuid", change.Uuid);
        Bind(insertFault, "$code", fault.Code);
        Bind(insertFault, "$message", fault.Message);
        Bind(insertFault, "$details", fault.Details);
        Bind(insertFault, "$now", now);
        return insertFault.ExecuteNonQueryAsync();
    }

    public async Task<long> AppendEventAsync(PreparedChange change, StoredStates? old, string now)
    {
        Bind(appendEvent, "$uuid", change.Uuid);
        Bind(appendEvent, "$old_vm_state", old?.VmState);
        Bind(appendEvent, "$new_vm_state", change.VmState);
        Bind(appendEvent, "$old_task_state", old?.TaskState);
        Bind(appendEvent, "$new_task_state", change.TaskState);
        Bind(appendEvent, "$old_power_state", old?.PowerState);
        Bind(appendEvent, "$new_power_state", change.PowerState);
        Bind(appendEvent, "$cause", change.Cause);
        Bind(appendEvent, "$now", now);
        return (long)(await appendEvent.ExecuteScalarAsync().ConfigureAwait(false))!;
    }

    public void Dispose()
    {
        foreach (var command in All)
        {
            command.Dispose();
        }
    }

    private static SqliteCommand Create(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters)
        {
            command.Parameters.Add(new SqliteParameter(name, DBNull.Value));
        }

        return command;
    }

    private static void BindStates(SqliteCommand command, PreparedChange change, string now)
    {
        Bind(command, "$vm_state", change.VmState);
        Bind(command, "$task_state", change.TaskState);
        Bind(command, "$power_state", change.PowerState);
        Bind(command, "$now", now);
    }

    private static void BindColumn(SqliteCommand command, string setFlag, string value, ColumnUpdate<string?> update)
    {
        Bind(command, setFlag, update.IsSet);
        Bind(command, value, update.Value);
    }

    private static void Bind(SqliteCommand command, string name, object? value) => command.Parameters[name].Value = value ?? DBNull.Value;
}

/// <summary>An instance's states as stored, in their column text.</summary>
internal sealed record StoredStates(string VmState, string TaskState, string PowerState)
{
    public bool Differ(PreparedChange change) =>
        VmState != change.VmState || TaskState != change.TaskState || PowerState != change.PowerState;
}
