using System.Globalization;
using ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// How values are spelled in the database: states and commands by their Nova / design.md names
/// (ACTIVE, SOFT_DELETED, none, RUNNING, soft reboot), UUIDs in their 36-character form, times as
/// ISO 8601 UTC, so that <c>sqlite3</c> shows an operator what the agent sees.
/// </summary>
internal static class StoreText
{
    private const string TimeFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    private static readonly Dictionary<string, VmState> VmStates = ByName<VmState>(StateNames.ToDisplayName);
    private static readonly Dictionary<string, TaskState> TaskStates = ByName<TaskState>(StateNames.ToDisplayName);
    private static readonly Dictionary<string, PowerState> PowerStates = ByName<PowerState>(StateNames.ToDisplayName);
    private static readonly Dictionary<string, InstanceCommand> Commands = ByName<InstanceCommand>(StateNames.ToDisplayName);

    public static string Of(Guid uuid) => uuid.ToString("D");

    public static string Of(DateTimeOffset time) => time.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture);

    public static Guid Uuid(string text) => Guid.ParseExact(text, "D");

    public static DateTimeOffset Time(string text) =>
        DateTimeOffset.ParseExact(text, TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    public static VmState VmState(string text) => Parse(VmStates, text, "vm_state");

    public static TaskState TaskState(string text) => Parse(TaskStates, text, "task_state");

    public static PowerState PowerState(string text) => Parse(PowerStates, text, "power_state");

    public static InstanceCommand Command(string text) => Parse(Commands, text, "command");

    private static T Parse<T>(Dictionary<string, T> names, string text, string what)
        where T : struct, Enum =>
        names.TryGetValue(text, out var value)
            ? value
            : throw new InvalidDataException($"the state database holds {what} '{text}', which this agent does not know");

    private static Dictionary<string, T> ByName<T>(Func<T, string> name)
        where T : struct, Enum =>
        Enum.GetValues<T>().ToDictionary(name, v => v, StringComparer.Ordinal);
}
