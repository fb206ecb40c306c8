using System.Collections;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using Microsoft.Data.Sqlite;
using Xunit;

namespace ComputeAgent.Instances.Tests.Store;

/// <summary>A database file under the temp directory, removed (with its -wal and -shm) afterwards.</summary>
public sealed class TempDatabase : IDisposable
{
    private static readonly string Directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "compute-agent-store-tests");

    public TempDatabase()
    {
        System.IO.Directory.CreateDirectory(Directory);
        Path = NewPath();
    }

    public string Path { get; }

    private List<string> Others { get; } = [];

    /// <summary>Another file name in the same place, removed with this one.</summary>
    public string NewPath()
    {
        var path = System.IO.Path.Combine(Directory, $"{Guid.NewGuid():N}.db");
        Others.Add(path);
        return path;
    }

    public static SqliteConnection OpenRaw(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        return connection;
    }

    public static object? Scalar(string path, string sql)
    {
        using var connection = OpenRaw(path);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        foreach (var path in Others)
        {
            foreach (var suffix in new[] { string.Empty, "-wal", "-shm" })
            {
                File.Delete(path + suffix);
            }
        }
    }
}

public static class Changes
{
    public static StateChange Create(InstanceSpec spec, string cause = "spawn") =>
        new(spec.Uuid, VmState.Building, TaskState.Scheduling, PowerState.NoState, cause) { Spec = spec };

    public static async Task<Guid> CreateAsync(InstanceStore store, Guid? uuid = null)
    {
        var spec = Samples.Typical(uuid ?? Guid.NewGuid());
        await store.CommitAsync(Create(spec));
        return spec.Uuid;
    }
}

/// <summary>
/// Structural equality over public properties, lists element by element and dictionaries key by
/// key: records holding IReadOnlyList / IReadOnlyDictionary compare those by reference, which says
/// nothing about a round trip.
/// </summary>
public static class DeepAssert
{
    public static void Equal(object? expected, object? actual, string path = "$")
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {expected ?? "null"}, got {actual ?? "null"}");
            return;
        }

        var type = expected.GetType();
        if (type.IsPrimitive || type.IsEnum || expected is string or Guid or DateTimeOffset or DateTime or decimal or TimeSpan)
        {
            Assert.True(type == actual.GetType() && Equals(expected, actual), $"{path}: expected {expected}, got {actual}");
            if (expected is DateTimeOffset time)
            {
                Assert.True(time.Offset == ((DateTimeOffset)actual).Offset, $"{path}: offset {time.Offset} became {((DateTimeOffset)actual).Offset}");
            }

            return;
        }

        if (expected is IDictionary expectedMap)
        {
            var actualMap = (IDictionary)actual;
            Assert.True(expectedMap.Count == actualMap.Count, $"{path}: {expectedMap.Count} entries became {actualMap.Count}");
            foreach (DictionaryEntry entry in expectedMap)
            {
                Assert.True(actualMap.Contains(entry.Key), $"{path}: key {entry.Key} lost");
                Equal(entry.Value, actualMap[entry.Key], $"{path}[{entry.Key}]");
            }

            return;
        }

        if (expected is IEnumerable expectedItems)
        {
            var e = expectedItems.Cast<object?>().ToList();
            var a = ((IEnumerable)actual).Cast<object?>().ToList();
            Assert.True(e.Count == a.Count, $"{path}: {e.Count} items became {a.Count}");
            for (var i = 0; i < e.Count; i++)
            {
                Equal(e[i], a[i], $"{path}[{i}]");
            }

            return;
        }

        // Collections above may differ in concrete type (a collection expression's vs the deserializer's List); objects may not.
        Assert.True(type == actual.GetType(), $"{path}: expected a {type.Name}, got a {actual.GetType().Name}");
        var properties = type.GetProperties().Where(p => p.GetIndexParameters().Length == 0).ToList();
        Assert.NotEmpty(properties);
        foreach (var property in properties)
        {
            Equal(property.GetValue(expected), property.GetValue(actual), $"{path}.{property.Name}");
        }
    }
}
