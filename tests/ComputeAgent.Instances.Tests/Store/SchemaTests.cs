using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using Xunit;

namespace ComputeAgent.Instances.Tests.Store;

public sealed class SchemaTests : IDisposable
{
    private readonly TempDatabase database = new();

    public void Dispose() => database.Dispose();

    // The schema version this build writes, as a literal: a new migration must change it here too.
    private const int Current = 3;

    private const int Next = Current + 1;

    private static IReadOnlyList<Migration> With(params Migration[] later) => [.. Migrations.All, .. later];

    private long Version() => (long)TempDatabase.Scalar(database.Path, "SELECT MAX(version) FROM schema_version")!;

    private long TableCount(string name) => (long)TempDatabase.Scalar(database.Path, $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{name}'")!;

    [Fact]
    public async Task An_empty_file_is_brought_to_the_current_version()
    {
        await File.WriteAllBytesAsync(database.Path, []);

        await using (var store = await InstanceStore.OpenAsync(database.Path))
        {
            Assert.Equal(Current, store.SchemaVersion);
        }

        Assert.Equal(Current, Version());
        Assert.All(new[] { "instances", "faults", "task_journal", "events", "schema_version" }, t => Assert.Equal(1, TableCount(t)));
    }

    [Fact]
    public async Task A_database_from_a_newer_agent_is_refused_clearly_and_left_alone()
    {
        await (await InstanceStore.OpenAsync(database.Path)).DisposeAsync();
        var future = Next;
        TempDatabase.Scalar(database.Path, $"INSERT INTO schema_version (version, description, applied_at) VALUES ({future}, 'from the future', '2030-01-01T00:00:00.0000000Z')");

        var error = await Assert.ThrowsAsync<StoreSchemaException>(() => InstanceStore.OpenAsync(database.Path));

        Assert.Contains($"schema version {future}", error.Message, StringComparison.Ordinal);
        Assert.Contains($"versions up to {future - 1}", error.Message, StringComparison.Ordinal);
        Assert.Contains(database.Path, error.Message, StringComparison.Ordinal);
        Assert.Equal(future, Version());
    }

    [Fact]
    public async Task An_older_database_gets_only_the_newer_steps_and_keeps_its_rows()
    {
        await using (var store = await InstanceStore.OpenAsync(database.Path))
        {
            await Changes.CreateAsync(store);
        }

        await using (var upgraded = await InstanceStore.OpenAsync(database.Path, InstanceStoreOptions.Default, With(new Migration(Next, "host column", "ALTER TABLE instances ADD COLUMN host TEXT")), CancellationToken.None))
        {
            Assert.Equal(Next, upgraded.SchemaVersion);
            Assert.Single(await upgraded.ListInstancesAsync(includeDeleted: false));
        }

        Assert.Equal(Next, Version());
        Assert.Equal(0L, TempDatabase.Scalar(database.Path, "SELECT COUNT(host) FROM instances"));
    }

    [Fact]
    public async Task A_database_that_kept_admin_passwords_loses_them_in_the_file_and_keeps_the_rest_and_becomes_owner_only()
    {
        // What an agent before schema version 3 stored: the spawn's password in spec_json.
        const string password = "old-agent-kept-this-9f3e";
        var spec = Samples.Typical(Guid.NewGuid());
        spec = spec with { Guest = spec.Guest with { AdminPassword = password } };
        await using (var old = await InstanceStore.OpenAsync(database.Path, InstanceStoreOptions.Default, [.. Migrations.All.Take(2)], CancellationToken.None))
        {
            await old.CommitAsync(Changes.Create(spec));
        }

        File.SetUnixFileMode(database.Path, (UnixFileMode)0b110_100_100);
        Assert.Contains(password, await ReadFilesAsync(), StringComparison.Ordinal);

        await using (var store = await InstanceStore.OpenAsync(database.Path))
        {
            var kept = Assert.Single(await store.ListInstancesAsync(includeDeleted: false));
            Assert.Null(kept.Spec.Guest.AdminPassword);
            DeepAssert.Equal(spec with { Guest = spec.Guest with { AdminPassword = null } }, kept.Spec);
        }

        Assert.DoesNotContain(password, await ReadFilesAsync(), StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(database.Path));
    }

    /// <summary>The database and its WAL as bytes (Latin-1: one char per byte, whatever they hold).</summary>
    private async Task<string> ReadFilesAsync()
    {
        var text = new System.Text.StringBuilder();
        foreach (var file in new[] { database.Path, database.Path + "-wal" }.Where(File.Exists))
        {
            text.Append(System.Text.Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file)));
        }

        return text.ToString();
    }

    [Fact]
    public async Task A_failing_step_rolls_back_every_step_of_the_open()
    {
        await (await InstanceStore.OpenAsync(database.Path)).DisposeAsync();
        var steps = With(new Migration(Next, "good", "CREATE TABLE hosts (name TEXT)"), new Migration(Next + 1, "bad", "ALTER TABLE no_such_table ADD COLUMN x TEXT"));

        var error = await Assert.ThrowsAsync<StoreSchemaException>(() => InstanceStore.OpenAsync(database.Path, InstanceStoreOptions.Default, steps, CancellationToken.None));

        Assert.Contains($"schema version {Next + 1} (bad)", error.Message, StringComparison.Ordinal);
        Assert.Equal(Next - 1, Version());
        Assert.Equal(0, TableCount("hosts"));
    }

    [Fact]
    public async Task Migrations_out_of_order_are_a_programming_error()
    {
        var steps = With(new Migration(Next + 1, "skips one", "SELECT 1"));

        await Assert.ThrowsAsync<InvalidOperationException>(() => InstanceStore.OpenAsync(database.Path, InstanceStoreOptions.Default, steps, CancellationToken.None));
    }

    [Fact]
    public async Task A_busy_timeout_of_zero_is_refused_because_the_driver_would_wait_forever()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => InstanceStore.OpenAsync(database.Path, new InstanceStoreOptions { BusyTimeout = TimeSpan.Zero }));
    }

    [Fact]
    public async Task The_file_is_in_wal_mode_and_connections_have_the_agents_settings()
    {
        await using var store = await InstanceStore.OpenAsync(database.Path);

        Assert.Equal("wal", TempDatabase.Scalar(database.Path, "PRAGMA journal_mode"));
        Assert.Equal("1", await store.ReadPragmaAsync("synchronous"));
        Assert.Equal("1", await store.ReadPragmaAsync("foreign_keys"));
        Assert.Equal("5000", await store.ReadPragmaAsync("busy_timeout"));
    }
}
