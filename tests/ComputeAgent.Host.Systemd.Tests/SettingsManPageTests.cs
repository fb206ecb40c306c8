extern alias host;

using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using ComputeAgent.Testing;
using host::ComputeAgent.Host;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>
/// compute-agent.json(5) against the settings the agent accepts: every writable property of
/// AgentOptions and of its sections (as AgentConfiguration binds them) has an entry with its type
/// and its default, and the page names no setting the agent does not have.
/// </summary>
public sealed partial class SettingsManPageTests
{
    private static readonly string PagePath = Path.Combine(RepositoryPaths.Root, "packaging", "compute-agent.json.5");

    [Fact]
    public void The_man_page_lists_exactly_the_settings_the_agent_accepts()
    {
        var accepted = Settings(typeof(AgentOptions), AgentOptions.Section, new AgentOptions()).Select(s => s.Key).Order(StringComparer.Ordinal).ToList();
        var documented = Page().Select(e => e.Key).Order(StringComparer.Ordinal).ToList();

        Assert.Empty(accepted.Except(documented, StringComparer.Ordinal).Select(k => $"{k} is a setting but compute-agent.json.5 does not list it"));
        Assert.Empty(documented.Except(accepted, StringComparer.Ordinal).Select(k => $"compute-agent.json.5 lists {k}, which the agent does not accept"));
        Assert.Equal(documented.Count, documented.Distinct(StringComparer.Ordinal).Count());

        // The sections are walked: a nested key of each is among them.
        Assert.Contains("Agent:Controller:MaxBackoffSeconds", accepted);
        Assert.Contains("Agent:Callers:MaxRequestBytes", accepted);
    }

    [Fact]
    public void Each_entry_gives_the_type_and_default_of_a_freshly_constructed_options_object_and_an_example()
    {
        var settings = Settings(typeof(AgentOptions), AgentOptions.Section, new AgentOptions()).ToDictionary(s => s.Key, StringComparer.Ordinal);
        var wrong = new List<string>();
        foreach (var entry in Page())
        {
            if (!settings.TryGetValue(entry.Key, out var setting))
            {
                continue; // the test above names it
            }

            if (entry.Type != TypeName(setting.Type))
            {
                wrong.Add($"{entry.Key}: type '{entry.Type}', the property is {TypeName(setting.Type)}");
            }

            if (entry.Default != Shown(setting.Default))
            {
                wrong.Add($"{entry.Key}: default '{entry.Default}', a new AgentOptions has '{Shown(setting.Default)}'");
            }

            var leaf = entry.Key[(entry.Key.LastIndexOf(':') + 1)..];
            if (!entry.Example.StartsWith($"\"{leaf}\": ", StringComparison.Ordinal) || entry.Allowed.Length == 0)
            {
                wrong.Add($"{entry.Key}: needs 'Allowed: ...' and an example \"{leaf}\": value, has '{entry.Allowed}' / '{entry.Example}'");
            }
        }

        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    [Fact]
    public void The_pages_defaults_are_read_as_written()
    {
        var entries = Page().ToDictionary(e => e.Key, StringComparer.Ordinal);
        Assert.Equal(("integer", "10"), (entries["Agent:MaxConcurrentBuilds"].Type, entries["Agent:MaxConcurrentBuilds"].Default));
        Assert.Equal(("string", "/var/lib/compute-agent"), (entries["Agent:StateDirectory"].Type, entries["Agent:StateDirectory"].Default));
        Assert.Equal(("list of strings", "[]"), (entries["Agent:Callers:AllowedSubjects"].Type, entries["Agent:Callers:AllowedSubjects"].Default));
        Assert.Equal(("string", "none"), (entries["Agent:Controller:Address"].Type, entries["Agent:Controller:Address"].Default));
    }

    private sealed record Setting(string Key, Type Type, object? Default);

    private sealed record Entry(string Key, string Type, string Default, string Allowed, string Example);

    /// <summary>What AgentConfiguration binds: writable public properties, a ComputeAgent class being a section of its own.</summary>
    private static IEnumerable<Setting> Settings(Type type, string prefix, object defaults)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            var key = $"{prefix}:{property.Name}";
            var value = property.GetValue(defaults);
            if (property.PropertyType.IsClass && property.PropertyType != typeof(string) && property.PropertyType.Namespace?.StartsWith("ComputeAgent", StringComparison.Ordinal) == true)
            {
                foreach (var nested in Settings(property.PropertyType, key, value!))
                {
                    yield return nested;
                }
            }
            else
            {
                yield return new Setting(key, property.PropertyType, value);
            }
        }
    }

    private static string TypeName(Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        return underlying switch
        {
            _ when underlying == typeof(int) => "integer",
            _ when underlying == typeof(double) => "number",
            _ when underlying == typeof(bool) => "boolean",
            _ when underlying == typeof(string) => "string",
            _ when typeof(IEnumerable).IsAssignableFrom(underlying) => "list of strings",
            _ => underlying.Name,
        };
    }

    /// <summary>A default as the page writes it: none for null, JSON-like lists, invariant numbers.</summary>
    private static string Shown(object? value) => value switch
    {
        null => "none",
        bool b => b ? "true" : "false",
        string s => s,
        IEnumerable<string> list => "[" + string.Join(", ", list.Select(v => $"\"{v}\"")) + "]",
        IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };

    /// <summary>The page's entries: .TP, .B Agent:Key, "Type: T. Default: \fBD\fP. Allowed: A.", ..., "Example:", .B example.</summary>
    private static List<Entry> Page()
    {
        var lines = File.ReadAllLines(PagePath);
        var entries = new List<Entry>();
        for (var i = 0; i + 1 < lines.Length; i++)
        {
            if (lines[i] != ".TP" || !lines[i + 1].StartsWith(".B Agent:", StringComparison.Ordinal))
            {
                continue;
            }

            var key = RoffText.Plain(lines[i + 1][3..]);
            var type = TypeLine().Match(lines[i + 2]);
            Assert.True(type.Success, $"{key}: the line after its name must be 'Type: T. Default: \\fBD\\fP. Allowed: A.', is '{lines[i + 2]}'");
            var example = Array.FindIndex(lines, i + 3, l => l == "Example:");
            Assert.True(example > 0 && example + 1 < lines.Length && lines[example + 1].StartsWith(".B ", StringComparison.Ordinal), $"{key} has no example");
            entries.Add(new Entry(
                key,
                RoffText.Plain(type.Groups["type"].Value),
                RoffText.Plain(type.Groups["default"].Value),
                RoffText.Plain(type.Groups["allowed"].Value),
                RoffText.Plain(lines[example + 1][3..])));
        }

        return entries;
    }

    [GeneratedRegex(@"^Type: (?<type>[^.]+)\. Default: \\fB(?<default>.*?)\\fP\. Allowed: (?<allowed>.*)\.$")]
    private static partial Regex TypeLine();
}
