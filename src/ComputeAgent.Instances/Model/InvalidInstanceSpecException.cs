namespace ComputeAgent.Instances.Model;

/// <summary>
/// One input of a spawn request (flavor, extra spec, image property, port, block device, host
/// setting) that cannot be turned into a guest. The gRPC layer maps it to INVALID_ARGUMENT; the
/// message names the field, the value and what is allowed.
/// </summary>
public sealed class InvalidInstanceSpecException : Exception
{
    // Hostile inputs can be 10 KB long; the message quotes a prefix so logs stay readable.
    private const int QuotedValueLength = 120;

    public InvalidInstanceSpecException()
        : this("(unknown)", null, "(unknown)")
    {
    }

    public InvalidInstanceSpecException(string message)
        : base(message)
    {
        Field = "(unknown)";
        Allowed = "(unknown)";
    }

    public InvalidInstanceSpecException(string message, Exception innerException)
        : base(message, innerException)
    {
        Field = "(unknown)";
        Allowed = "(unknown)";
    }

    public InvalidInstanceSpecException(string field, string? value, string allowed)
        : base(Describe(field, value, allowed))
    {
        Field = field;
        Value = value;
        Allowed = allowed;
    }

    /// <summary>The input's name as the caller wrote it: "flavor.extra_specs[hw:cpu_policy]", "image.properties[hw_disk_bus]", "ports[1].mac".</summary>
    public string Field { get; }

    /// <summary>The refused value (null when the input was missing).</summary>
    public string? Value { get; }

    /// <summary>What the field accepts, in words.</summary>
    public string Allowed { get; }

    private static string Describe(string field, string? value, string allowed)
    {
        var quoted = value is null
            ? "missing"
            : value.Length <= QuotedValueLength ? $"'{value}'" : $"'{value[..QuotedValueLength]}…' ({value.Length} characters)";
        return $"{field}: {quoted} is not allowed; allowed: {allowed}";
    }
}
