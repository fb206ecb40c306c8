using System.Globalization;
using Microsoft.Data.Sqlite;

namespace ComputeAgent.Instances.Store;

/// <summary>Opens connections to one state database, each with the agent's settings.</summary>
internal sealed class StoreConnections
{
    private readonly string connectionString;
    private readonly string pragmas;

    public StoreConnections(string path, TimeSpan busyTimeout)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(busyTimeout, TimeSpan.Zero);
        Path = path;
        connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            ForeignKeys = true,
            // Microsoft.Data.Sqlite retries a busy database for this many seconds; 0 would mean forever.
            DefaultTimeout = Math.Max(1, (int)Math.Ceiling(busyTimeout.TotalSeconds)),
        }.ToString();
        // NORMAL is durable in WAL mode against a crash of the agent (only a power loss may lose the
        // last commits) and avoids an fsync per commit. Per connection, so set on every one.
        // secure_delete: what a change removes (a blanked password, a deleted instance's data) is
        // overwritten in the file, not left in free space.
        pragmas = string.Create(CultureInfo.InvariantCulture, $"PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; PRAGMA busy_timeout = {(long)busyTimeout.TotalMilliseconds};");
    }

    public string Path { get; }

    /// <summary>
    /// The database holds user data: the file and its WAL are the owner's alone (0600), whatever
    /// the umask. A new file is created 0600 before SQLite opens it, so it is never readable by
    /// others, not even for a moment; an older file (or WAL) is narrowed to 0600.
    /// </summary>
    public void RestrictToOwner()
    {
        const UnixFileMode ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        if (!File.Exists(Path) && !Directory.Exists(Path))
        {
            // SQLite takes an empty file for a new database.
            using var created = new FileStream(Path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = ownerOnly });
        }

        foreach (var file in new[] { Path, Path + "-wal", Path + "-shm" })
        {
            if (File.Exists(file) && File.GetUnixFileMode(file) != ownerOnly)
            {
                File.SetUnixFileMode(file, ownerOnly);
            }
        }
    }

    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            using var command = connection.CreateCommand();
            command.CommandText = pragmas;
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// SQLite's quick_check (every page and index readable and consistent, not the slower
    /// cross-check of index contents): a damaged file is refused before anything writes to it.
    /// </summary>
    public async Task QuickCheckAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        var faults = new List<string>();
        try
        {
            using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA quick_check(5)";
            using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                faults.Add(reader.GetString(0));
            }
        }
        catch (SqliteException e) when (IsDamage(e))
        {
            throw Damaged(Path, e.Message, e);
        }

        if (faults is not ["ok"])
        {
            throw Damaged(Path, "quick_check: " + string.Join("; ", faults), null);
        }
    }

    /// <summary>SQLITE_CORRUPT or SQLITE_NOTADB: the file itself is bad, not the call.</summary>
    public static bool IsDamage(SqliteException e) => e.SqliteErrorCode is 11 or 26;

    public static StoreDamagedException Damaged(string path, string detail, Exception? inner)
    {
        var message = $"the state database {path} is damaged ({detail}). It holds the instances' records, so the agent will not start on it, "
            + $"nor start afresh and forget them: keep the file (with {path}-wal if there is one), restore it from a backup, "
            + $"or recover what is readable with sqlite3's .recover into a new file and put that in its place";
        return inner is null ? new StoreDamagedException(message) : new StoreDamagedException(message, inner);
    }

    /// <summary>Switches the file to write-ahead logging (persistent in the file) and checks that it took.</summary>
    public async Task EnableWalAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode = WAL";
        var mode = (string?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
        {
            // e.g. a file system without shared memory support; rollback journaling would halve throughput silently.
            throw new StoreSchemaException($"the state database {Path} cannot use write-ahead logging (journal_mode is '{mode}')");
        }
    }

    /// <summary>Closes the pooled connections, so the file is released (and the WAL checkpointed) when the store goes.</summary>
    public void ReleasePool()
    {
        using var connection = new SqliteConnection(connectionString);
        SqliteConnection.ClearPool(connection);
    }
}
