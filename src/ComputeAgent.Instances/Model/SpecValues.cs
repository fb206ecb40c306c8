using System.Globalization;
using System.Xml;

namespace ComputeAgent.Instances.Model;

/// <summary>
/// Parsing of the string values that flavor extra_specs and image properties arrive as, with the
/// refusals every field shares (numbers out of range, text that cannot go into XML, unsafe paths).
/// </summary>
internal static class SpecValues
{
    public const int MaxNameLength = 255;
    public const int MaxPathLength = 4096;

    public static int ParseInt(string field, string value, int min, int max)
    {
        if (int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed) && parsed >= min && parsed <= max)
        {
            return parsed;
        }

        throw new InvalidInstanceSpecException(field, value, $"an integer from {min} to {max}");
    }

    public static long ParseLong(string field, string value, long min, long max)
    {
        if (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed) && parsed >= min && parsed <= max)
        {
            return parsed;
        }

        throw new InvalidInstanceSpecException(field, value, $"an integer from {min} to {max}");
    }

    /// <summary>oslo's bool_from_string in strict mode, as Nova reads boolean extra specs and image properties.</summary>
    public static bool ParseBool(string field, string value) => value.Trim().ToLowerInvariant() switch
    {
        "1" or "t" or "true" or "on" or "y" or "yes" => true,
        "0" or "f" or "false" or "off" or "n" or "no" => false,
        _ => throw new InvalidInstanceSpecException(field, value, "true, false, yes, no, on, off, 1, 0"),
    };

    /// <summary>Free text (names, ids) that goes into the XML as escaped character data: bounded and free of control characters.</summary>
    /// <param name="multiline">Also allow tab and newlines (metadata values, PEM keys, passwords: text that goes into JSON, escaped).</param>
    public static string CheckText(string field, string? value, int maxLength = MaxNameLength, bool allowEmpty = false, bool multiline = false)
    {
        if (value is null || (!allowEmpty && value.Length == 0))
        {
            throw new InvalidInstanceSpecException(field, value, "a non-empty string");
        }

        if (value.Length > maxLength)
        {
            throw new InvalidInstanceSpecException(field, value, $"at most {maxLength} characters");
        }

        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if ((char.IsControl(c) && !(multiline && c is '\t' or '\n' or '\r')) || (!char.IsSurrogate(c) && !XmlConvert.IsXmlChar(c)))
            {
                throw new InvalidInstanceSpecException(field, value, multiline ? "text without control characters other than tab and newlines" : "printable characters (no control characters such as newlines)");
            }

            // A surrogate must be half of a pair; a lone one is not a character XML can carry.
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                throw new InvalidInstanceSpecException(field, value, "valid Unicode text (no unpaired surrogates)");
            }
        }

        return value;
    }

    /// <summary>
    /// A host path given to QEMU: absolute, normalised (no "." or ".." segments, no "//"), printable,
    /// so that no input can point a guest at a file outside what the caller meant.
    /// </summary>
    public static string CheckPath(string field, string? value)
    {
        CheckText(field, value, MaxPathLength);
        if (!value!.StartsWith('/') || value.Contains("//", StringComparison.Ordinal) || value.Length > 1 && value.EndsWith('/'))
        {
            throw new InvalidInstanceSpecException(field, value, "an absolute, normalised path");
        }

        foreach (var segment in value.Split('/'))
        {
            if (segment is "." or "..")
            {
                throw new InvalidInstanceSpecException(field, value, "an absolute path without '.' or '..' segments");
            }
        }

        return value;
    }

    /// <summary>A host network device name (tap, bridge): what the kernel accepts (IFNAMSIZ - 1 characters, no '/', ':' or whitespace).</summary>
    public static string CheckDeviceName(string field, string? value)
    {
        if (value is null || value.Length is 0 or > 15 || value is "." or "..")
        {
            throw new InvalidInstanceSpecException(field, value, "a network device name of 1 to 15 characters");
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                throw new InvalidInstanceSpecException(field, value, "a network device name of letters, digits, '-', '_' and '.'");
            }
        }

        return value;
    }

    /// <summary>A short token (machine type, os_distro, pool name): ASCII letters, digits and '.', '_', '-'.</summary>
    public static string CheckToken(string field, string? value, int maxLength = 64, string extra = "._-")
    {
        if (value is null || value.Length == 0 || value.Length > maxLength)
        {
            throw new InvalidInstanceSpecException(field, value, $"1 to {maxLength} characters");
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && !extra.Contains(c, StringComparison.Ordinal))
            {
                throw new InvalidInstanceSpecException(field, value, $"ASCII letters, digits and '{extra}'");
            }
        }

        return value;
    }
}
