using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;

namespace ComputeAgent.Host;

/// <summary>
/// Reads the agent's settings (the JSON file, COMPUTE_AGENT_* environment variables, the command
/// line) and turns every way they can be wrong into a message that names where the value came
/// from (file and line, variable or argument) and the key, instead of an exception.
/// </summary>
public static class AgentConfiguration
{
    public const string DefaultFile = "/etc/compute-agent/agent.json";

    /// <summary>The settings, the problems that stop the start (empty: none) and the warnings.</summary>
    public sealed record Result(AgentOptions? Options, IReadOnlyList<string> Problems, IReadOnlyList<string> Warnings);

    /// <summary>Adds the three sources to <paramref name="configuration"/> and binds the Agent section, checking every key.</summary>
    public static Result Load(IConfigurationBuilder configuration, string[] args)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var named = Environment.GetEnvironmentVariable("COMPUTE_AGENT_CONFIG");
        var file = string.IsNullOrEmpty(named) ? DefaultFile : named;
        if (!string.IsNullOrEmpty(named) && !File.Exists(named))
        {
            // The default file may be absent (all defaults); a file someone named must be there.
            return Refused($"COMPUTE_AGENT_CONFIG names {named}, which does not exist: create it, or unset COMPUTE_AGENT_CONFIG to read {DefaultFile}");
        }

        try
        {
            configuration.AddJsonFile(file, optional: true);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or IOException or UnauthorizedAccessException)
        {
            return Refused(JsonProblem(file, e));
        }

        try
        {
            configuration.AddEnvironmentVariables("COMPUTE_AGENT_").AddCommandLine(args);
        }
        catch (FormatException e)
        {
            return Refused($"the command line is not valid: {e.Message}");
        }

        var root = configuration.Build();
        var problems = new List<string>();
        var warnings = new List<string>();
        CheckSection(root, root.GetSection(AgentOptions.Section), typeof(AgentOptions), problems, warnings);
        if (problems.Count > 0)
        {
            return new Result(null, problems, warnings);
        }

        var options = root.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions();
        return new Result(options, options.Validate(), warnings);
    }

    private static Result Refused(string problem) => new(null, [problem], []);

    private static string JsonProblem(string file, Exception e)
    {
        for (var inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is JsonException { LineNumber: { } line } json)
            {
                // JsonException counts lines from 0; editors from 1.
                var detail = json.Message.Split(" LineNumber:", 2)[0].TrimEnd('.', ' ');
                return $"{file} line {line + 1}: not valid JSON ({detail}); fix the file (it may hold // comments, nothing else that is not JSON)";
            }
        }

        var innermost = e;
        while (innermost.InnerException is not null)
        {
            innermost = innermost.InnerException;
        }

        return $"{file} cannot be read as the agent's settings: {innermost.Message}";
    }

    /// <summary>Each key under <paramref name="section"/>: a setting of <paramref name="type"/> with a value of its type, or a warning that it is ignored.</summary>
    private static void CheckSection(IConfigurationRoot root, IConfigurationSection section, Type type, List<string> problems, List<string> warnings)
    {
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var child in section.GetChildren())
        {
            if (!properties.TryGetValue(child.Key, out var property))
            {
                warnings.Add($"{child.Path} ({Origin(root, child)}) is not a setting and is ignored; the settings are listed in {DefaultFile} as packaged and in man compute-agent.json");
                continue;
            }

            if (IsSettingsGroup(property.PropertyType))
            {
                CheckSection(root, child, property.PropertyType, problems, warnings);
                continue;
            }

            try
            {
                child.Get(property.PropertyType);
            }
            catch (InvalidOperationException)
            {
                var shown = child.Value is null ? "(a group of keys)" : $"'{child.Value}'";
                problems.Add($"{child.Path} {shown} ({Origin(root, child)}) must be {TypeName(property.PropertyType)}");
            }
        }
    }

    private static bool IsSettingsGroup(Type type) => type.IsClass && type != typeof(string) && type.Namespace?.StartsWith("ComputeAgent", StringComparison.Ordinal) == true;

    private static string TypeName(Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type) ?? type;
        return underlying switch
        {
            _ when underlying == typeof(int) || underlying == typeof(long) => "a whole number",
            _ when underlying == typeof(double) => "a number",
            _ when underlying == typeof(bool) => "true or false",
            _ when underlying == typeof(string) => "a string",
            _ when typeof(System.Collections.IEnumerable).IsAssignableFrom(underlying) => "a list of strings, e.g. [\"a\", \"b\"]",
            _ => underlying.Name,
        };
    }

    /// <summary>Where the value that wins came from: the last source that has the key.</summary>
    private static string Origin(IConfigurationRoot root, IConfigurationSection key)
    {
        foreach (var provider in root.Providers.Reverse())
        {
            if (!Has(provider, key.Path))
            {
                continue;
            }

            return provider switch
            {
                JsonConfigurationProvider json => JsonOrigin(json, key.Path),
                EnvironmentVariablesConfigurationProvider => $"environment variable COMPUTE_AGENT_{key.Path.Replace(":", "__", StringComparison.Ordinal)}",
                CommandLineConfigurationProvider => $"command line --{key.Path}",
                _ => provider.ToString() ?? "unknown source",
            };
        }

        return "unknown source";
    }

    private static string JsonOrigin(JsonConfigurationProvider json, string key)
    {
        var file = json.Source.FileProvider?.GetFileInfo(json.Source.Path ?? string.Empty).PhysicalPath ?? json.Source.Path ?? "the JSON file";
        return JsonLine(file, key) is { } line ? $"{file} line {line}" : file;
    }

    /// <summary>A key with a value, or a group of keys (an object or array) under it.</summary>
    private static bool Has(IConfigurationProvider provider, string path) =>
        provider.TryGet(path, out _) || provider.GetChildKeys([], path).Any();

    /// <summary>The line (from 1) of the property that holds <paramref name="key"/> in the JSON file, or its nearest enclosing one.</summary>
    private static int? JsonLine(string file, string key)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(file);
        }
        catch (IOException)
        {
            return null;
        }

        var bom = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0;
        // As the JSON configuration provider reads it: // comments and trailing commas allowed.
        var reader = new Utf8JsonReader(bytes.AsSpan(bom), new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var path = new List<string>();
        var pushed = new Stack<bool>();
        string? name = null;
        int? nearest = null;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        name = reader.GetString();
                        var here = string.Join(':', path.Append(name));
                        var line = 1 + bytes.AsSpan(0, bom + (int)reader.TokenStartIndex).Count((byte)'\n');
                        if (string.Equals(here, key, StringComparison.OrdinalIgnoreCase))
                        {
                            return line;
                        }

                        if (key.StartsWith(here + ":", StringComparison.OrdinalIgnoreCase))
                        {
                            nearest = line;
                        }

                        break;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        pushed.Push(name is not null);
                        if (name is not null)
                        {
                            path.Add(name);
                        }

                        name = null;
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        if (pushed.Pop())
                        {
                            path.RemoveAt(path.Count - 1);
                        }

                        break;
                    default:
                        name = null;
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // The provider read it, so this does not happen; the key is named without its line.
        }

        return nearest;
    }
}
