using Microsoft.Data.Sqlite;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// The agent's durable records (design.md §5): instances, faults, the journal of tasks in flight
/// and the event log, in one SQLite file in WAL mode. Every state change is one
/// <see cref="CommitAsync"/>; changes from many instances share transactions (see <see cref="CommitWriter"/>).
/// </summary>
public sealed class InstanceStore : IAsyncDisposable
{
    private readonly StoreConnections connections;
    private readonly CommitWriter writer;
    private readonly StoreQueries queries;
    private int disposed;

    private InstanceStore(StoreConnections connections, CommitWriter writer, int schemaVersion)
    {
        this.connections = connections;
        this.writer = writer;
        queries = new StoreQueries(connections);
        SchemaVersion = schemaVersion;
    }

    public string Path => connections.Path;

    /// <summary>The schema version the file is at (the newest this code knows).</summary>
    public int SchemaVersion { get; }

    internal long BatchesCommitted => writer.BatchesCommitted;

    /// <summary>
    /// Opens (creating if needed) the database at <paramref name="path"/>, switches it to WAL and
    /// migrates it to the current schema. Fails with <see cref="StoreSchemaException"/> if the file's
    /// schema is newer than this code, and with <see cref="StoreDamagedException"/> (before writing
    /// to it) if the file is damaged.
    /// </summary>
    public static Task<InstanceStore> OpenAsync(string path, CancellationToken cancellationToken = default) =>
        OpenAsync(path, InstanceStoreOptions.Default, cancellationToken);

    public static Task<InstanceStore> OpenAsync(string path, InstanceStoreOptions options, CancellationToken cancellationToken = default) =>
        OpenAsync(path, options, Migrations.All, cancellationToken);

    internal static async Task<InstanceStore> OpenAsync(string path, InstanceStoreOptions options, IReadOnlyList<Migration> migrations, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        var connections = new StoreConnections(path, options.BusyTimeout);
        connections.RestrictToOwner();
        SqliteConnection connection;
        try
        {
            connection = await connections.OpenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException e) when (StoreConnections.IsDamage(e))
        {
            connections.ReleasePool();
            throw StoreConnections.Damaged(path, e.Message, e);
        }

        try
        {
            await connections.QuickCheckAsync(connection, cancellationToken).ConfigureAwait(false);
            await connections.EnableWalAsync(connection, cancellationToken).ConfigureAwait(false);
            var version = await SchemaMigrator.MigrateAsync(connection, path, migrations, options.TimeProvider, cancellationToken).ConfigureAwait(false);
            return new InstanceStore(connections, new CommitWriter(connection, options.TimeProvider, options.MaxBatchSize), version);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            connections.ReleasePool();
            throw;
        }
    }

    /// <summary>
    /// Commits <paramref name="change"/> in one transaction: the instance row, the task journal
    /// entry, the fault if any, and one event if the states differ from the stored ones.
    /// </summary>
    /// <returns>The event's sequence number, or 0 when the states did not change (no event).</returns>
    /// <exception cref="InvalidOperationException">The instance has no record and the change carries no spec (nothing was written).</exception>
    /// <exception cref="OperationCanceledException">Cancelled before the writer took the change (nothing was written).</exception>
    public Task<long> CommitAsync(StateChange change, CancellationToken cancellationToken = default)
    {
        var prepared = PreparedChange.From(change);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        return cancellationToken.IsCancellationRequested
            ? Task.FromCanceled<long>(cancellationToken)
            : writer.CommitAsync(prepared, cancellationToken);
    }

    public async Task<IReadOnlyList<InstanceRecord>> ListInstancesAsync(bool includeDeleted, CancellationToken cancellationToken = default) =>
        await queries.ListInstancesAsync(includeDeleted, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// The UUIDs of deleted instances. Their rows are never removed: they are the tombstones that
    /// keep a domain a late libvirt call re-creates for one of them from being adopted.
    /// </summary>
    public async Task<IReadOnlyList<Guid>> ListDeletedUuidsAsync(CancellationToken cancellationToken = default) =>
        await queries.ListDeletedUuidsAsync(cancellationToken).ConfigureAwait(false);

    public Task<InstanceRecord?> GetInstanceAsync(Guid uuid, CancellationToken cancellationToken = default) =>
        queries.GetInstanceAsync(uuid, cancellationToken);

    /// <summary>Up to <paramref name="limit"/> events with a sequence number above <paramref name="afterSeq"/>, in order.</summary>
    public async Task<IReadOnlyList<EventRecord>> ReadEventsAsync(long afterSeq, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        return await queries.ReadEventsAsync(afterSeq, limit, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The last sequence number handed out (0 before the first event); pruning does not lower it.</summary>
    public Task<long> LastSequenceAsync(CancellationToken cancellationToken = default) => queries.LastSequenceAsync(cancellationToken);

    public async Task<IReadOnlyList<FaultRecord>> ListFaultsAsync(Guid uuid, CancellationToken cancellationToken = default) =>
        await queries.ListFaultsAsync(uuid, cancellationToken).ConfigureAwait(false);

    /// <summary>The tasks that were in flight, for recovery at start.</summary>
    public async Task<IReadOnlyList<TaskJournalEntry>> ListJournalAsync(CancellationToken cancellationToken = default) =>
        await queries.ListJournalAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>Deletes the events before <paramref name="seq"/> (those the controller has acknowledged); returns how many.</summary>
    public Task<int> PruneEventsBeforeAsync(long seq, CancellationToken cancellationToken = default) =>
        queries.PruneEventsBeforeAsync(seq, cancellationToken);

    /// <summary>The answer remembered for <paramref name="requestId"/>: the method it answered and the serialized reply.</summary>
    public Task<(string Method, byte[] Answer)?> FindAnswerAsync(string requestId, CancellationToken cancellationToken = default) =>
        queries.FindAnswerAsync(requestId, cancellationToken);

    /// <summary>Remembers the first answer to <paramref name="requestId"/>; answers older than <paramref name="keepAfter"/> are forgotten.</summary>
    public Task RememberAnswerAsync(string requestId, string method, byte[] answer, DateTimeOffset now, DateTimeOffset keepAfter, CancellationToken cancellationToken = default) =>
        queries.RememberAnswerAsync(requestId, method, answer, now, keepAfter, cancellationToken);

    internal Task<string> ReadPragmaAsync(string name, CancellationToken cancellationToken = default) =>
        queries.ReadPragmaAsync(name, cancellationToken);

    /// <summary>Commits what is queued, then closes the file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        await writer.DisposeAsync().ConfigureAwait(false);
        connections.ReleasePool();
    }
}
