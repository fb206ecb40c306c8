using System.Text.Json;

namespace ComputeAgent.Instances.Images;

/// <summary>What <c>qemu-img info --output=json</c> says about an image, the parts the safety checks read.</summary>
/// <param name="Format">The format qemu-img probed ("qcow2", "raw", "vmdk", "vpc", ...).</param>
/// <param name="BackingFile">backing-filename: a file QEMU would open under the image.</param>
/// <param name="DataFile">format-specific data-file: where a qcow2 keeps its data instead of in itself.</param>
/// <param name="Corrupt">qcow2's corrupt bit.</param>
/// <param name="CreateType">vmdk's create-type (monolithicSparse, streamOptimized, twoGbMaxExtentFlat, ...).</param>
internal sealed record QemuImageInfo(string Format, long VirtualSize, string? BackingFile, string? DataFile, bool Corrupt, string? CreateType)
{
    /// <exception cref="InvalidDataException">The text is not qemu-img's JSON.</exception>
    public static QemuImageInfo Parse(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            var format = root.GetProperty("format").GetString() ?? throw new InvalidDataException("qemu-img info shows no format");
            var virtualSize = root.GetProperty("virtual-size").GetInt64();
            var backing = String(root, "backing-filename") ?? String(root, "full-backing-filename");
            string? dataFile = null;
            string? createType = null;
            var corrupt = false;
            if (root.TryGetProperty("format-specific", out var specific) && specific.ValueKind == JsonValueKind.Object
                && specific.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object)
            {
                dataFile = String(data, "data-file");
                createType = String(data, "create-type");
                corrupt = data.TryGetProperty("corrupt", out var flag) && flag.ValueKind == JsonValueKind.True;
            }

            return new QemuImageInfo(format, virtualSize, backing, dataFile, corrupt, createType);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"unexpected qemu-img info output ({e.Message})", e);
        }
    }

    private static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
