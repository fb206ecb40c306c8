using System.Data;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// Brings a database to the newest schema this code knows, all steps in one transaction (SQLite's
/// DDL is transactional, so a failed step leaves the file as it was), and refuses a newer one.
/// </summary>
internal static class SchemaMigrator
{
    public static async Task<int> MigrateAsync(SqliteConnection connection, string path, IReadOnlyList<Migration> migrations, TimeProvider time, CancellationToken cancellationToken)
    {
        CheckOrder(migrations);
        var latest = Migrations.Latest(migrations);
        var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(IsolationLevel.Serializable, cancellationToken).ConfigureAwait(false);
        await using (transaction.ConfigureAwait(false))
        {
            await ExecuteAsync(connection, transaction, """
                CREATE TABLE IF NOT EXISTS schema_version (
                    version INTEGER NOT NULL PRIMARY KEY,
                    description TEXT NOT NULL,
                    applied_at TEXT NOT NULL
                )
                """, cancellationToken).ConfigureAwait(false);
            var current = await CurrentVersionAsync(connection, transaction, cancellationToken).ConfigureAwait(false);
            if (current > latest)
            {
                throw new StoreSchemaException(
                    $"the state database {path} has schema version {current}, but this compute-agent knows versions up to {latest}: " +
                    "it was written by a newer compute-agent; run that version, or restore a backup made by this one");
            }

            foreach (var step in migrations.Where(m => m.Version > current))
            {
                try
                {
                    await ExecuteAsync(connection, transaction, step.Sql, cancellationToken).ConfigureAwait(false);
                }
                catch (SqliteException e)
                {
                    throw new StoreSchemaException($"migrating the state database {path} to schema version {step.Version} ({step.Description}) failed; it stays at version {current}: {e.Message}", e);
                }

                using var record = Command(connection, transaction, "INSERT INTO schema_version (version, description, applied_at) VALUES ($version, $description, $applied_at)");
                record.Parameters.AddWithValue("$version", step.Version);
                record.Parameters.AddWithValue("$description", step.Description);
                record.Parameters.AddWithValue("$applied_at", StoreText.Of(time.GetUtcNow()));
                await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return latest;
        }
    }

    private static void CheckOrder(IReadOnlyList<Migration> migrations)
    {
        for (var i = 0; i < migrations.Count; i++)
        {
            if (migrations[i].Version != i + 1)
            {
                throw new InvalidOperationException($"migration {i} has version {migrations[i].Version}; versions must run 1, 2, 3, … in order");
            }
        }
    }

    private static async Task<int> CurrentVersionAsync(SqliteConnection connection, SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        using var query = Command(connection, transaction, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
        return Convert.ToInt32(await query.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    private static async Task ExecuteAsync(SqliteConnection connection, SqliteTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        using var command = Command(connection, transaction, sql);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }
}
