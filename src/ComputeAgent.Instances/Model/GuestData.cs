using System.Globalization;
using System.Text;

namespace ComputeAgent.Instances.Model;

/// <summary>A key pair (Nova's keypair): its public half goes to the guest, which cloud-init writes into authorized_keys.</summary>
public sealed record KeyPair(string Name, string PublicKey, string Type = "ssh");

/// <summary>
/// What the guest is told at boot through its config drive (Nova's instance metadata): the key
/// pair, user data, the user's key/value metadata, the admin password and the hostname. Kept with
/// the instance so that a rebuild or a restart can write the same drive again.
/// </summary>
public sealed record GuestData
{
    /// <summary>Nova's limit: user data is at most 65,535 bytes once base64-decoded.</summary>
    public const int MaxUserDataBytes = 65_535;

    /// <summary>Nova's limits on server metadata: 128 items, keys and values of at most 255 characters.</summary>
    public const int MaxMetadataItems = 128;

    private const int MaxPublicKeyLength = 16_384;
    private const int MaxPasswordLength = 255;
    private const int MaxHostnameLength = 63;

    public KeyPair? KeyPair { get; init; }

    /// <summary>Opaque bytes (a cloud-config, a script, a MIME multipart); written to the drive byte for byte.</summary>
    public byte[]? UserData { get; init; }

    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    public string? AdminPassword { get; init; }

    /// <summary>Null: derived from the display name as Nova does (see <see cref="HostnameFor"/>).</summary>
    public string? Hostname { get; init; }

    /// <summary>The caller asked for a config drive (the image's img_config_drive=mandatory and the host's force_config_drive also do).</summary>
    public bool ConfigDrive { get; init; }

    public string? AvailabilityZone { get; init; }

    public int LaunchIndex { get; init; }

    /// <summary>Refuses what Nova's API would refuse, naming the field; text that is allowed is carried as given (the drive's JSON escapes it).</summary>
    public void Validate()
    {
        if (KeyPair is { } key)
        {
            SpecValues.CheckText("key_pair.name", key.Name);
            if (key.Type is not ("ssh" or "x509"))
            {
                throw new InvalidInstanceSpecException("key_pair.type", key.Type, "ssh or x509");
            }

            // One line for ssh (authorized_keys is line-based); x509 is PEM, several lines.
            if (key.Type == "ssh")
            {
                SpecValues.CheckText("key_pair.public_key", key.PublicKey, MaxPublicKeyLength);
            }
            else
            {
                CheckMultiline("key_pair.public_key", key.PublicKey, MaxPublicKeyLength);
            }
        }

        if (UserData is { Length: > MaxUserDataBytes } data)
        {
            throw new InvalidInstanceSpecException("user_data", $"({data.Length} bytes)", $"at most {MaxUserDataBytes} bytes");
        }

        if (Metadata.Count > MaxMetadataItems)
        {
            throw new InvalidInstanceSpecException("metadata", $"({Metadata.Count} items)", $"at most {MaxMetadataItems} items");
        }

        foreach (var (name, value) in Metadata)
        {
            CheckMultiline("metadata", name, SpecValues.MaxNameLength, allowEmpty: false);
            CheckMultiline($"metadata[{name}]", value, SpecValues.MaxNameLength, allowEmpty: true);
        }

        if (AdminPassword is not null)
        {
            CheckMultiline("admin_password", AdminPassword, MaxPasswordLength, allowEmpty: false);
        }

        if (Hostname is not null && !IsHostname(Hostname))
        {
            throw new InvalidInstanceSpecException("hostname", Hostname, $"an RFC 1123 host name label: 1 to {MaxHostnameLength} of a-z, 0-9 and '-', not starting or ending with '-'");
        }

        if (AvailabilityZone is not null)
        {
            SpecValues.CheckText("availability_zone", AvailabilityZone);
        }

        if (LaunchIndex < 0)
        {
            throw new InvalidInstanceSpecException("launch_index", LaunchIndex.ToString(CultureInfo.InvariantCulture), "0 or more");
        }
    }

    /// <summary>
    /// The hostname the guest gets: the given one, else the display name made a host name as Nova's
    /// sanitize_hostname does (lower case, spaces and '_' to '-', other characters dropped), else
    /// "server-UUID".
    /// </summary>
    public string HostnameFor(string displayName, Guid uuid)
    {
        if (Hostname is not null)
        {
            return Hostname;
        }

        var text = new StringBuilder(displayName.Length);
        foreach (var c in displayName.ToLowerInvariant())
        {
            if (char.IsAsciiLetterOrDigit(c) || c == '-')
            {
                text.Append(c);
            }
            else if (c is ' ' or '_' or '.')
            {
                text.Append('-');
            }
        }

        var name = text.ToString();
        name = name[..Math.Min(name.Length, MaxHostnameLength)].Trim('-');
        return name.Length > 0 ? name : "server-" + uuid.ToString();
    }

    private static bool IsHostname(string value) =>
        value.Length is > 0 and <= MaxHostnameLength
        && value[0] != '-' && value[^1] != '-'
        && value.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');

    private static void CheckMultiline(string field, string? value, int maxLength, bool allowEmpty = false) =>
        SpecValues.CheckText(field, value, maxLength, allowEmpty, multiline: true);
}
