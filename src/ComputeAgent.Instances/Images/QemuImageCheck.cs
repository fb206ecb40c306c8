using System.Text.Json;

namespace ComputeAgent.Instances.Images;

/// <summary>What <c>qemu-img check</c> found: its exit status says the verdict, its JSON the counts.</summary>
/// <param name="ExitCode">0 clean, 1 the check could not finish, 2 corruptions, 3 only leaked clusters, 63 the format has no check.</param>
/// <param name="Corruptions">corruptions: metadata pointing where it must not (a truncated image shows them).</param>
/// <param name="CheckErrors">check-errors: what qemu-img could not read while checking.</param>
/// <param name="Error">Its standard error: the first lines name the damage.</param>
internal sealed record QemuImageCheck(int ExitCode, long Corruptions, long CheckErrors, string Error)
{
    private const int Clean = 0;
    private const int OnlyLeaks = 3;
    private const int NoCheckForFormat = 63;

    /// <summary>
    /// Nothing found that would make QEMU read or write outside the image's data. Leaked clusters
    /// (allocated, unused: what an interrupted write leaves) waste space but harm nothing.
    /// </summary>
    public bool IsUsable => ExitCode is Clean or OnlyLeaks or NoCheckForFormat;

    /// <summary>The result in words, for the fault: the counts and qemu-img's first complaint.</summary>
    public string Describe()
    {
        var first = Error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        var counts = ExitCode == 1 ? "the check could not finish" : $"{Corruptions} corruption(s), {CheckErrors} check error(s)";
        return $"qemu-img check found it damaged: {counts} (exit {ExitCode}){(first is null ? string.Empty : $": {first}")}";
    }

    public static QemuImageCheck From(int exitCode, string output, string error)
    {
        long corruptions = 0, checkErrors = 0;
        try
        {
            using var document = JsonDocument.Parse(output);
            corruptions = Count(document.RootElement, "corruptions");
            checkErrors = Count(document.RootElement, "check-errors");
        }
        catch (JsonException)
        {
            // No JSON (the check did not get that far): the exit status and standard error say why.
        }

        return new QemuImageCheck(exitCode, corruptions, checkErrors, error);
    }

    private static long Count(JsonElement root, string name) =>
        root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var value) && value.TryGetInt64(out var n) ? n : 0;
}
