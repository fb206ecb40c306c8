using System.Text;
using ComputeAgent.Testing;

namespace ComputeAgent.Host.Tests;

/// <summary>
/// The project's documents a reader runs commands from: README, the documents it links, and the
/// man pages. <see cref="Commands"/> reads their fenced (Markdown) or .nf/.fi (roff) blocks.
/// </summary>
internal static class Documents
{
    /// <summary>Markdown documents, repository-relative, README first (its commands run first).</summary>
    public static readonly string[] Markdown = ["README.md", "src/README.md", "tests/README.md", "packaging/operations.md"];

    /// <summary>The man pages (roff).</summary>
    public static readonly string[] ManPages = ["packaging/compute-agent.8", "packaging/compute-agent.json.5", "packaging/compute-agent-cli.1"];

    public static string PathOf(string document) => Path.Combine(RepositoryPaths.Root, document);

    /// <summary>
    /// Every command line that starts with <paramref name="program"/> in the documents' code blocks,
    /// as the reader would paste it: a line ending in '\' or inside an open single quote continues
    /// on the next; roff escapes are undone.
    /// </summary>
    public static List<(string Document, string Command)> Commands(string program)
    {
        var commands = new List<(string, string)>();
        foreach (var document in Markdown)
        {
            commands.AddRange(Commands(document, BlockLines(File.ReadLines(PathOf(document)), l => l.TrimStart().StartsWith("```", StringComparison.Ordinal), l => l.TrimStart().StartsWith("```", StringComparison.Ordinal)), program));
        }

        foreach (var page in ManPages)
        {
            var lines = BlockLines(File.ReadLines(PathOf(page)), l => l.StartsWith(".nf", StringComparison.Ordinal), l => l.StartsWith(".fi", StringComparison.Ordinal));
            commands.AddRange(Commands(page, lines.Select(l => l is null ? null : RoffText.Plain(l)), program));
        }

        return commands;
    }

    /// <summary>The lines inside code blocks; null marks a block's start, so no command spans two blocks.</summary>
    private static List<string?> BlockLines(IEnumerable<string> lines, Func<string, bool> opens, Func<string, bool> closes)
    {
        var inside = new List<string?>();
        var inBlock = false;
        foreach (var line in lines)
        {
            if (!inBlock && opens(line))
            {
                inBlock = true;
                inside.Add(null);
            }
            else if (inBlock && closes(line))
            {
                inBlock = false;
            }
            else if (inBlock)
            {
                inside.Add(line);
            }
        }

        return inside;
    }

    private static IEnumerable<(string, string)> Commands(string document, IEnumerable<string?> lines, string program)
    {
        var current = new StringBuilder();
        foreach (var line in lines)
        {
            if (line is null)
            {
                current.Clear();
                continue;
            }

            current.Append(line).Append('\n');
            var text = current.ToString();
            if (InsideQuotes(text) || line.EndsWith('\\'))
            {
                continue;
            }

            if (text.StartsWith(program + " ", StringComparison.Ordinal))
            {
                yield return (document, text.TrimEnd('\n'));
            }

            current.Clear();
        }
    }

    /// <summary>Whether shell text ends inside a quoted string (a comment's apostrophe does not count).</summary>
    private static bool InsideQuotes(string text)
    {
        var quote = '\0';
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote == '\'')
            {
                quote = c == '\'' ? '\0' : quote;
            }
            else if (c == '\\')
            {
                i++;
            }
            else if (quote == '"')
            {
                quote = c == '"' ? '\0' : quote;
            }
            else if (c is '\'' or '"')
            {
                quote = c;
            }
            else if (c == '#' && (i == 0 || char.IsWhiteSpace(text[i - 1])))
            {
                i = text.IndexOf('\n', i) is var end and >= 0 ? end : text.Length;
            }
        }

        return quote != '\0';
    }
}
