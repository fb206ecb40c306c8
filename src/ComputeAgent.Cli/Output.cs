using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using ComputeAgent.Api.V1;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Google.Protobuf.WellKnownTypes;

namespace ComputeAgent.Cli;

/// <summary>
/// What the operator commands print: tables and "key  value" lines for people, the proto's JSON
/// mapping (field names as in the proto, every field present) for scripts, and the states named
/// as the agent's own messages name them (ACTIVE, none, RUNNING).
/// </summary>
internal static class Output
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithPreserveProtoFieldNames(true));
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The column header of <see cref="EventLine"/>.</summary>
    public static readonly string EventHeader = EventColumns("SEQ", "TIME (UTC)", "INSTANCE", "VM_STATE", "TASK_STATE", "POWER_STATE", "CAUSE");

    public static JsonNode Json(IMessage message) => JsonNode.Parse(Formatter.Format(message))!;

    /// <summary>One JSON document, indented, on standard output.</summary>
    public static void WriteJson(JsonNode node) => Console.Out.WriteLine(node.ToJsonString(Indented));

    /// <summary>One message as one JSON line (JSON Lines: a stream a script reads line by line).</summary>
    public static void WriteJsonLine(IMessage message) => Console.Out.WriteLine(Formatter.Format(message));

    public static string Name(VmState state) => Strip(state, "VM_STATE_");

    public static string Name(TaskState state) => state == TaskState.None ? "none" : Strip(state, "TASK_STATE_");

    public static string Name(PowerState state) => Strip(state, "POWER_STATE_");

    /// <summary>The vm_states a filter may name, as <see cref="Name(VmState)"/> prints them.</summary>
    public static IEnumerable<string> VmStateNames() => System.Enum.GetValues<VmState>().Where(s => s != VmState.Unspecified).Select(Name);

    public static VmState? ParseVmState(string text) =>
        System.Enum.GetValues<VmState>().Where(s => s != VmState.Unspecified).Cast<VmState?>()
            .FirstOrDefault(s => string.Equals(Name(s!.Value), text, StringComparison.OrdinalIgnoreCase));

    public static string Time(Timestamp? time) =>
        time is null ? "-" : time.ToDateTimeOffset().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>How long ago, in the largest whole unit: 42s, 5m, 3h, 12d.</summary>
    public static string Age(Timestamp? since, DateTimeOffset now)
    {
        if (since is null)
        {
            return "-";
        }

        var age = now - since.ToDateTimeOffset();
        return age.TotalSeconds < 60 ? $"{Math.Max(0, (int)age.TotalSeconds)}s"
            : age.TotalMinutes < 60 ? $"{(int)age.TotalMinutes}m"
            : age.TotalHours < 48 ? $"{(int)age.TotalHours}h"
            : $"{(int)age.TotalDays}d";
    }

    public static string Describe(Flavor? flavor)
    {
        if (flavor is null)
        {
            return "-";
        }

        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"{flavor.Name}: {flavor.Vcpus} vCPU, {flavor.RamMib} MiB RAM, {flavor.RootGib} GiB root");
        if (flavor.EphemeralGib > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $", {flavor.EphemeralGib} GiB ephemeral");
        }

        if (flavor.SwapGib > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $", {flavor.SwapGib} GiB swap");
        }

        return text.ToString();
    }

    /// <summary>One state change as a line of fixed columns (a stream cannot size its columns from its rows).</summary>
    public static string EventLine(InstanceEvent e) => EventColumns(
        e.Sequence.ToString(CultureInfo.InvariantCulture),
        e.Time is null ? "-" : e.Time.ToDateTimeOffset().ToString("yyyy-MM-dd HH:mm:ss.fff", CultureInfo.InvariantCulture),
        e.InstanceUuid,
        Name(e.VmState),
        Name(e.TaskState),
        Name(e.PowerState),
        e.Cause);

    /// <summary>A table: each column as wide as its widest cell, two spaces apart.</summary>
    public static void Table(IReadOnlyList<string> headers, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        var widths = headers.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        foreach (var row in rows.Prepend(headers))
        {
            Console.Out.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Count - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
        }
    }

    /// <summary>"key  value" lines, the keys padded to one width.</summary>
    public static void Fields(IReadOnlyList<(string Key, string Value)> fields)
    {
        var width = fields.Max(f => f.Key.Length);
        foreach (var (key, value) in fields)
        {
            Console.Out.WriteLine($"{key.PadRight(width)}  {value}");
        }
    }

    private static string EventColumns(string seq, string time, string uuid, string vm, string task, string power, string cause) =>
        $"{seq,-7} {time,-23}  {uuid,-36}  {vm,-12} {task,-20} {power,-11} {cause}";

    // The proto's own value names (VM_STATE_ACTIVE), which the C# names (Active) lose.
    private static string Strip<T>(T value, string prefix)
        where T : struct, System.Enum
    {
        var name = typeof(T).GetField(value.ToString())?.GetCustomAttribute<OriginalNameAttribute>()?.Name ?? value.ToString();
        return name.StartsWith(prefix, StringComparison.Ordinal) ? name[prefix.Length..] : name;
    }
}
