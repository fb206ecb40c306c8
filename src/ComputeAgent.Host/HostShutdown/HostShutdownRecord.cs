using System.Text.Json;
using System.Text.Json.Serialization;
using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Host.HostShutdown;

/// <summary>
/// The guests a host shutdown stopped or saved, and the boot they were running in: written to the
/// state directory before the agent touches them, read at the next start. A different boot id
/// there means the host has rebooted since, and those guests are brought back.
/// </summary>
public sealed record HostShutdownRecord(string BootId, DateTimeOffset At, IReadOnlyList<HostShutdownGuest> Guests)
{
    public const string FileName = "host-shutdown.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public static string PathIn(string stateDirectory) => Path.Combine(stateDirectory, FileName);

    public static async Task<HostShutdownRecord?> ReadAsync(string stateDirectory, CancellationToken cancellationToken)
    {
        var path = PathIn(stateDirectory);
        if (!File.Exists(path))
        {
            return null;
        }

        await using var file = File.OpenRead(path);
        return await JsonSerializer.DeserializeAsync<HostShutdownRecord>(file, Json, cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidDataException($"{path} holds null");
    }

    /// <summary>Written to a temporary file and renamed, so a crash never leaves half a record.</summary>
    public async Task WriteAsync(string stateDirectory, CancellationToken cancellationToken)
    {
        var path = PathIn(stateDirectory);
        var temporary = path + ".tmp";
        await using (var file = File.Create(temporary))
        {
            await JsonSerializer.SerializeAsync(file, this, Json, cancellationToken).ConfigureAwait(false);
            await file.FlushAsync(cancellationToken).ConfigureAwait(false);
            file.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }

    public static void Delete(string stateDirectory) => File.Delete(PathIn(stateDirectory));

    /// <summary>The kernel's id of this boot (a new one each boot).</summary>
    public static async Task<string> ReadBootIdAsync(string path, CancellationToken cancellationToken) =>
        (await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false)).Trim();
}

/// <summary>One guest and what the host's shutdown did to it (stop or suspend), so the next boot undoes that (start or resume).</summary>
public sealed record HostShutdownGuest(Guid Uuid, InstanceCommand Command);
