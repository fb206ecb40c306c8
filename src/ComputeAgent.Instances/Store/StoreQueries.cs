using System.Globalization;
using ComputeAgent.Instances.Model;
using Microsoft.Data.Sqlite;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// The reads. Each runs on a pooled connection of its own: in WAL mode readers see the last
/// committed state and neither wait for nor hold up the writer.
/// </summary>
internal sealed class StoreQueries(StoreConnections connections)
{
    private const string InstanceColumns =
        "uuid, name, spec_json, vm_state, task_state, power_state, created_at, updated_at, vm_state_before_task, pre_resize_json, pre_rescue_xml, deleted_at";

    public Task<List<InstanceRecord>> ListInstancesAsync(bool includeDeleted, CancellationToken cancellationToken) =>
        QueryAsync(
            $"SELECT {InstanceColumns} FROM instances {(includeDeleted ? string.Empty : "WHERE deleted_at IS NULL")} ORDER BY created_at, uuid",
            _ => { },
            ReadInstance,
            cancellationToken);

    public Task<List<Guid>> ListDeletedUuidsAsync(CancellationToken cancellationToken) =>
        QueryAsync("SELECT uuid FROM instances WHERE deleted_at IS NOT NULL", _ => { }, r => StoreText.Uuid(r.GetString(0)), cancellationToken);

    public async Task<InstanceRecord?> GetInstanceAsync(Guid uuid, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync(
            $"SELECT {InstanceColumns} FROM instances WHERE uuid = $uuid",
            p => p.AddWithValue("$uuid", StoreText.Of(uuid)),
            ReadInstance,
            cancellationToken).ConfigureAwait(false);
        return rows.Count == 0 ? null : rows[0];
    }

    public Task<List<EventRecord>> ReadEventsAsync(long afterSeq, int limit, CancellationToken cancellationToken) =>
        QueryAsync(
            """
            SELECT seq, uuid, old_vm_state, new_vm_state, old_task_state, new_task_state, old_power_state, new_power_state, cause, created_at
            FROM events WHERE seq > $after ORDER BY seq LIMIT $limit
            """,
            p =>
            {
                p.AddWithValue("$after", afterSeq);
                p.AddWithValue("$limit", limit);
            },
            r => new EventRecord(
                r.GetInt64(0),
                StoreText.Uuid(r.GetString(1)),
                r.IsDBNull(2) ? null : StoreText.VmState(r.GetString(2)),
                StoreText.VmState(r.GetString(3)),
                r.IsDBNull(4) ? null : StoreText.TaskState(r.GetString(4)),
                StoreText.TaskState(r.GetString(5)),
                r.IsDBNull(6) ? null : StoreText.PowerState(r.GetString(6)),
                StoreText.PowerState(r.GetString(7)),
                r.GetString(8),
                StoreText.Time(r.GetString(9))),
            cancellationToken);

    /// <summary>The last sequence number handed out, even if its event was pruned since (sqlite_sequence keeps it); 0 before the first.</summary>
    public async Task<long> LastSequenceAsync(CancellationToken cancellationToken)
    {
        var rows = await QueryAsync(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)",
            _ => { },
            r => r.GetInt64(0),
            cancellationToken).ConfigureAwait(false);
        return rows[0];
    }

    public Task<List<FaultRecord>> ListFaultsAsync(Guid uuid, CancellationToken cancellationToken) =>
        QueryAsync(
            "SELECT id, uuid, code, message, details, created_at FROM faults WHERE uuid = $uuid ORDER BY id",
            p => p.AddWithValue("$uuid", StoreText.Of(uuid)),
            r => new FaultRecord(r.GetInt64(0), StoreText.Uuid(r.GetString(1)), r.GetString(2), r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4), StoreText.Time(r.GetString(5))),
            cancellationToken);

    public Task<List<TaskJournalEntry>> ListJournalAsync(CancellationToken cancellationToken) =>
        QueryAsync(
            "SELECT uuid, command, step, started_at, created_json FROM task_journal ORDER BY started_at, uuid",
            _ => { },
            r => new TaskJournalEntry(
                StoreText.Uuid(r.GetString(0)),
                StoreText.Command(r.GetString(1)),
                StoreText.TaskState(r.GetString(2)),
                StoreText.Time(r.GetString(3)),
                StoreJson.Deserialize<Dictionary<string, string>>(r.GetString(4), "task_journal.created_json")),
            cancellationToken);

    public async Task<int> PruneEventsBeforeAsync(long seq, CancellationToken cancellationToken)
    {
        var connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM events WHERE seq < $seq";
            command.Parameters.AddWithValue("$seq", seq);
            return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task<(string Method, byte[] Answer)?> FindAnswerAsync(string requestId, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync(
            "SELECT method, answer FROM request_ledger WHERE request_id = $id",
            p => p.AddWithValue("$id", requestId),
            r => (r.GetString(0), (byte[])r.GetValue(1)),
            cancellationToken).ConfigureAwait(false);
        return rows.Count == 0 ? null : rows[0];
    }

    /// <summary>Keeps the first answer (a second one for the same id is ignored) and forgets those older than <paramref name="keepAfter"/>.</summary>
    public async Task RememberAnswerAsync(string requestId, string method, byte[] answer, DateTimeOffset now, DateTimeOffset keepAfter, CancellationToken cancellationToken)
    {
        var connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                INSERT OR IGNORE INTO request_ledger (request_id, method, answer, created_at) VALUES ($id, $method, $answer, $now);
                DELETE FROM request_ledger WHERE created_at < $keep;
                """;
            command.Parameters.AddWithValue("$id", requestId);
            command.Parameters.AddWithValue("$method", method);
            command.Parameters.AddWithValue("$answer", answer);
            command.Parameters.AddWithValue("$now", StoreText.Of(now));
            command.Parameters.AddWithValue("$keep", StoreText.Of(keepAfter));
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads the store's own settings as a connection of it sees them (tests).</summary>
    public async Task<string> ReadPragmaAsync(string name, CancellationToken cancellationToken)
    {
        var rows = await QueryAsync("PRAGMA " + name, _ => { }, r => Convert.ToString(r.GetValue(0), CultureInfo.InvariantCulture) ?? string.Empty, cancellationToken).ConfigureAwait(false);
        return rows[0];
    }

    private static InstanceRecord ReadInstance(SqliteDataReader r) => new(
        StoreText.Uuid(r.GetString(0)),
        r.GetString(1),
        StoreJson.Deserialize<InstanceSpec>(r.GetString(2), "instances.spec_json"),
        StoreText.VmState(r.GetString(3)),
        StoreText.TaskState(r.GetString(4)),
        StoreText.PowerState(r.GetString(5)),
        StoreText.Time(r.GetString(6)),
        StoreText.Time(r.GetString(7)),
        r.IsDBNull(8) ? null : StoreText.VmState(r.GetString(8)),
        r.IsDBNull(9) ? null : StoreJson.Deserialize<PreResizeState>(r.GetString(9), "instances.pre_resize_json"),
        r.IsDBNull(10) ? null : r.GetString(10),
        r.IsDBNull(11) ? null : StoreText.Time(r.GetString(11)));

    private async Task<List<T>> QueryAsync<T>(string sql, Action<SqliteParameterCollection> bind, Func<SqliteDataReader, T> read, CancellationToken cancellationToken)
    {
        var connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            bind(command.Parameters);
            var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await using (reader.ConfigureAwait(false))
            {
                var rows = new List<T>();
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    rows.Add(read(reader));
                }

                return rows;
            }
        }
    }
}
