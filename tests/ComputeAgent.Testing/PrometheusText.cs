using System.Globalization;
using System.Text;

namespace ComputeAgent.Testing;

/// <summary>One sample line: the series' name, its labels and its value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string Key => Name + "{" + string.Join(",", Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\"")) + "}";
}

/// <summary>
/// A strict reader of the Prometheus text exposition format 0.0.4, as a scraper must read
/// /metrics: any line it cannot read exactly, a TYPE after its samples or given twice, a
/// family whose lines are not together, a label given twice, a series given twice, or a
/// histogram whose buckets are not cumulative up to +Inf = _count is a <see cref="FormatException"/>
/// naming the line. What a test asks for that is not there throws too.
/// </summary>
public sealed class PrometheusText
{
    private static readonly string[] Types = ["counter", "gauge", "histogram", "summary", "untyped"];
    private readonly Dictionary<string, string> types = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> help = new(StringComparer.Ordinal);
    private readonly List<PrometheusSample> samples = [];

    private PrometheusText()
    {
    }

    public IReadOnlyList<PrometheusSample> Samples => samples;

    /// <summary>Every family's TYPE: name → counter, gauge, histogram, summary or untyped.</summary>
    public IReadOnlyDictionary<string, string> FamilyTypes => types;

    public IReadOnlyDictionary<string, string> Help => help;

    public static PrometheusText Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parsed = new PrometheusText();
        if (text.Length > 0 && !text.EndsWith('\n'))
        {
            throw new FormatException("the exposition does not end with a line feed");
        }

        var lines = text.Split('\n');
        var seenSeries = new HashSet<string>(StringComparer.Ordinal);
        var closedFamilies = new HashSet<string>(StringComparer.Ordinal);
        var sampled = new HashSet<string>(StringComparer.Ordinal);
        string? current = null;
        for (var i = 0; i < lines.Length - 1; i++)
        {
            var line = lines[i];
            var number = i + 1;
            if (line.Length == 0)
            {
                continue;
            }

            string family;
            if (line[0] == '#')
            {
                var parts = line.Split(' ', 4);
                if (parts.Length >= 3 && parts[1] is "HELP" or "TYPE")
                {
                    family = Name(parts[2], number, line);
                    if (parts[1] == "TYPE")
                    {
                        if (parts.Length != 4 || !Types.Contains(parts[3]))
                        {
                            throw Bad(number, line, "TYPE must name counter, gauge, histogram, summary or untyped");
                        }

                        if (sampled.Contains(family))
                        {
                            throw Bad(number, line, "TYPE after the family's samples");
                        }

                        if (!parsed.types.TryAdd(family, parts[3]))
                        {
                            throw Bad(number, line, "second TYPE for the family");
                        }
                    }
                    else if (!parsed.help.TryAdd(family, parts.Length == 4 ? parts[3] : string.Empty))
                    {
                        throw Bad(number, line, "second HELP for the family");
                    }
                }
                else
                {
                    continue; // a comment
                }
            }
            else
            {
                var sample = Sample(line, number);
                family = parsed.FamilyOf(sample.Name);
                if (!seenSeries.Add(sample.Key))
                {
                    throw Bad(number, line, "the same series twice");
                }

                sampled.Add(family);
                parsed.samples.Add(sample);
            }

            if (family != current)
            {
                if (current is not null)
                {
                    closedFamilies.Add(current);
                }

                if (closedFamilies.Contains(family))
                {
                    throw Bad(number, line, $"the lines of family {family} are not together");
                }

                current = family;
            }
        }

        parsed.CheckHistograms();
        return parsed;
    }

    /// <summary>The samples of one series name (e.g. a counter, or a histogram's _count).</summary>
    public IReadOnlyList<PrometheusSample> Series(string name) => samples.Where(s => s.Name == name).ToList();

    /// <summary>The value of the one sample with this name and exactly these labels; throws when there is none.</summary>
    public double Value(string name, params (string Name, string Value)[] labels) =>
        Find(name, labels)?.Value ?? throw new KeyNotFoundException($"no sample {name}{{{string.Join(",", labels.Select(l => $"{l.Name}=\"{l.Value}\""))}}}; the names present are {string.Join(", ", samples.Select(s => s.Name).Distinct())}");

    /// <summary>The sample with this name and exactly these labels, or null.</summary>
    public PrometheusSample? Find(string name, params (string Name, string Value)[] labels) =>
        samples.SingleOrDefault(s => s.Name == name && s.Labels.Count == labels.Length && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value));

    private string FamilyOf(string sampleName)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
        {
            if (sampleName.EndsWith(suffix, StringComparison.Ordinal)
                && types.TryGetValue(sampleName[..^suffix.Length], out var type) && type is "histogram" or "summary")
            {
                return sampleName[..^suffix.Length];
            }
        }

        return sampleName;
    }

    private void CheckHistograms()
    {
        foreach (var (family, _) in types.Where(t => t.Value == "histogram"))
        {
            var buckets = samples.Where(s => s.Name == family + "_bucket").GroupBy(s => Without(s, "le"));
            foreach (var series in buckets)
            {
                var ordered = series.Select(s => (Le: ParseValue(s.Labels["le"], 0, s.Name), s.Value)).OrderBy(b => b.Le).ToList();
                if (!double.IsPositiveInfinity(ordered[^1].Le))
                {
                    throw new FormatException($"{family}{{{series.Key}}} has no le=\"+Inf\" bucket");
                }

                for (var b = 1; b < ordered.Count; b++)
                {
                    if (ordered[b].Value < ordered[b - 1].Value)
                    {
                        throw new FormatException($"{family}{{{series.Key}}}: bucket le={ordered[b].Le} holds fewer than le={ordered[b - 1].Le}; buckets are cumulative");
                    }
                }

                var count = samples.SingleOrDefault(s => s.Name == family + "_count" && Without(s, "le") == series.Key)
                    ?? throw new FormatException($"{family}{{{series.Key}}} has no _count");
                if (count.Value != ordered[^1].Value)
                {
                    throw new FormatException($"{family}{{{series.Key}}}: _count {count.Value} is not the +Inf bucket's {ordered[^1].Value}");
                }

                _ = samples.SingleOrDefault(s => s.Name == family + "_sum" && Without(s, "le") == series.Key)
                    ?? throw new FormatException($"{family}{{{series.Key}}} has no _sum");
            }
        }
    }

    private static string Without(PrometheusSample sample, string label) =>
        string.Join(",", sample.Labels.Where(l => l.Key != label).OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\""));

    private static PrometheusSample Sample(string line, int number)
    {
        var position = 0;
        while (position < line.Length && line[position] is not ('{' or ' '))
        {
            position++;
        }

        var name = Name(line[..position], number, line);
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (position < line.Length && line[position] == '{')
        {
            position++;
            while (position < line.Length && line[position] != '}')
            {
                var start = position;
                while (position < line.Length && line[position] != '=')
                {
                    position++;
                }

                var label = line[start..position];
                if (!IsLabelName(label) || position + 1 >= line.Length || line[position + 1] != '"')
                {
                    throw Bad(number, line, $"bad label name or missing quote after '{label}'");
                }

                position += 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (position >= line.Length)
                    {
                        throw Bad(number, line, "unterminated label value");
                    }

                    var c = line[position++];
                    if (c == '"')
                    {
                        break;
                    }

                    if (c == '\\')
                    {
                        value.Append(position < line.Length ? line[position++] switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            _ => throw Bad(number, line, "a label value escapes only \\\\, \\\" and \\n"),
                        } : throw Bad(number, line, "a backslash ends the line"));
                    }
                    else
                    {
                        value.Append(c);
                    }
                }

                if (!labels.TryAdd(label, value.ToString()))
                {
                    throw Bad(number, line, $"label {label} twice");
                }

                if (position < line.Length && line[position] == ',')
                {
                    position++;
                }
                else if (position >= line.Length || line[position] != '}')
                {
                    throw Bad(number, line, "labels must be separated by ',' and closed by '}'");
                }
            }

            if (position >= line.Length)
            {
                throw Bad(number, line, "labels not closed by '}'");
            }

            position++;
        }

        if (position >= line.Length || line[position] != ' ')
        {
            throw Bad(number, line, "no space before the value");
        }

        var fields = line[(position + 1)..].Split(' ');
        if (fields.Length is < 1 or > 2)
        {
            throw Bad(number, line, "a value and at most a timestamp must follow the series");
        }

        if (fields.Length == 2 && !long.TryParse(fields[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
        {
            throw Bad(number, line, "the timestamp must be an integer of milliseconds");
        }

        return new PrometheusSample(name, labels, ParseValue(fields[0], number, line));
    }

    private static double ParseValue(string text, int number, string line) => text switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        "NaN" => double.NaN,
        _ => double.TryParse(text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw Bad(number, line, $"'{text}' is not a sample value"),
    };

    private static string Name(string name, int number, string line) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] is '_' or ':') && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or ':')
            ? name
            : throw Bad(number, line, $"'{name}' is not a metric name");

    private static bool IsLabelName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    private static FormatException Bad(int number, string line, string why) => new($"line {number} '{line}': {why}");
}
