using System.Text.RegularExpressions;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// Reads .proto text as protoc lays it out here (one declaration per line) and names each service,
/// message, enum, rpc, field and enum value that has no comment: a // line right above it, or a
/// // comment at the end of its line.
/// </summary>
internal static partial class ProtoDeclarations
{
    public static List<string> Undocumented(IReadOnlyList<string> lines)
    {
        var undocumented = new List<string>();
        var scopes = new Stack<(string Kind, string Name)>();
        var commentAbove = false;
        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i].Trim();
            if (line.StartsWith("//", StringComparison.Ordinal))
            {
                commentAbove = true;
                continue;
            }

            var commented = commentAbove || line.Contains("//", StringComparison.Ordinal);
            commentAbove = false;
            var code = line.Split("//", 2)[0].Trim();
            var at = $" (line {i + 1})";
            var path = string.Join('.', scopes.Reverse().Where(s => s.Kind is "message" or "enum").Select(s => s.Name));
            if (code.StartsWith('}'))
            {
                scopes.Pop();
            }
            else if (Block().Match(code) is { Success: true } block)
            {
                var kind = block.Groups["kind"].Value;
                var name = block.Groups["name"].Value;
                if (!commented && kind != "oneof")
                {
                    undocumented.Add($"{kind} {Qualified(path, name)}{at}");
                }

                scopes.Push((kind, name));
            }
            else if (Rpc().Match(code) is { Success: true } rpc)
            {
                if (!commented)
                {
                    undocumented.Add($"rpc {rpc.Groups["name"].Value}{at}");
                }

                if (code.EndsWith('{'))
                {
                    scopes.Push(("rpc", rpc.Groups["name"].Value));
                }
            }
            else if (scopes.TryPeek(out var scope) && scope.Kind == "enum" && EnumValue().Match(code) is { Success: true } value)
            {
                if (!commented)
                {
                    undocumented.Add($"enum value {Qualified(path, value.Groups["name"].Value)}{at}");
                }
            }
            else if (scopes.Any(s => s.Kind == "message") && Field().Match(code) is { Success: true } field)
            {
                if (!commented)
                {
                    undocumented.Add($"field {Qualified(path, field.Groups["name"].Value)}{at}");
                }
            }
        }

        return undocumented;
    }

    private static string Qualified(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    [GeneratedRegex(@"^(?<kind>service|message|enum|oneof)\s+(?<name>\w+)\s*\{$")]
    private static partial Regex Block();

    [GeneratedRegex(@"^rpc\s+(?<name>\w+)\s*\(")]
    private static partial Regex Rpc();

    [GeneratedRegex(@"^(?<name>[A-Z][A-Z0-9_]*)\s*=\s*-?\d+")]
    private static partial Regex EnumValue();

    [GeneratedRegex(@"^(?:repeated\s+|optional\s+)?(?:map<[^>]+>|[\w.]+)\s+(?<name>\w+)\s*=\s*\d+")]
    private static partial Regex Field();
}
