namespace ComputeAgent.Testing;

/// <summary>roff source (the man pages) as the page shows it, for tests that read the pages.</summary>
public static class RoffText
{
    /// <summary>\- is '-', \(dq and \(aq are quotes, \e is '\', \&amp; and font changes are nothing.</summary>
    public static string Plain(string text) => text
        .Replace("\\-", "-", StringComparison.Ordinal)
        .Replace("\\(dq", "\"", StringComparison.Ordinal)
        .Replace("\\(aq", "'", StringComparison.Ordinal)
        .Replace("\\&", string.Empty, StringComparison.Ordinal)
        .Replace("\\fB", string.Empty, StringComparison.Ordinal)
        .Replace("\\fI", string.Empty, StringComparison.Ordinal)
        .Replace("\\fR", string.Empty, StringComparison.Ordinal)
        .Replace("\\fP", string.Empty, StringComparison.Ordinal)
        .Replace("\\e", "\\", StringComparison.Ordinal);
}
