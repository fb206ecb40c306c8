using System.Collections.Frozen;
using System.Text.Json;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// Reads a Glance v2 image document. Glance flattens custom properties into the top level next to
/// its own attributes; as Nova does, its own attributes stay out of the properties and every other
/// string-valued member becomes one.
/// </summary>
internal static class GlanceImageJson
{
    // The v2 image schema's base properties; os_glance_* are reserved for Glance itself.
    private static readonly FrozenSet<string> BaseAttributes = FrozenSet.Create(
        StringComparer.Ordinal,
        "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo", "os_hash_value",
        "owner", "size", "virtual_size", "container_format", "disk_format", "created_at", "updated_at", "tags",
        "direct_url", "min_ram", "min_disk", "self", "file", "schema", "locations", "stores");

    /// <exception cref="InvalidDataException">The document is not a Glance v2 image, or not the one asked for.</exception>
    public static GlanceImage Parse(string requestedId, ReadOnlyMemory<byte> json)
    {
        using var document = ParseDocument(json);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"expected a JSON object, got {root.ValueKind}");
        }

        var id = RequiredString(root, "id");
        if (id != requestedId)
        {
            throw new InvalidDataException($"asked for image {requestedId}, got image {id}");
        }

        var properties = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var member in root.EnumerateObject())
        {
            if (member.Value.ValueKind == JsonValueKind.String && !BaseAttributes.Contains(member.Name)
                && !member.Name.StartsWith("os_glance_", StringComparison.Ordinal))
            {
                properties[member.Name] = member.Value.GetString()!;
            }
        }

        var meta = new ImageMeta(
            id,
            DiskFormat: OptionalString(root, "disk_format") ?? string.Empty,
            ContainerFormat: OptionalString(root, "container_format") ?? string.Empty,
            MinDiskGiB: (int)(OptionalNumber(root, "min_disk", int.MaxValue) ?? 0),
            MinRamMiB: (int)(OptionalNumber(root, "min_ram", int.MaxValue) ?? 0),
            Properties: properties,
            Name: OptionalString(root, "name"));
        return new GlanceImage(
            meta,
            RequiredString(root, "status"),
            OptionalNumber(root, "size"),
            OptionalString(root, "checksum"),
            OptionalString(root, "os_hash_algo"),
            OptionalString(root, "os_hash_value"))
        {
            VirtualSize = OptionalNumber(root, "virtual_size"),
        };
    }

    private static JsonDocument ParseDocument(ReadOnlyMemory<byte> json)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"not JSON ({e.Message})", e);
        }
    }

    private static string RequiredString(JsonElement root, string name) =>
        OptionalString(root, name) ?? throw new InvalidDataException($"'{name}' is missing");

    private static string? OptionalString(JsonElement root, string name) =>
        !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : throw new InvalidDataException($"'{name}' is {value.ValueKind}, not a string");

    private static long? OptionalNumber(JsonElement root, string name, long max = long.MaxValue) =>
        !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) && number >= 0 && number <= max ? number
        : throw new InvalidDataException($"'{name}' is {value}, not a non-negative whole number");
}
