using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ComputeAgent.Instances.Model;

/// <summary>
/// Turns a Cinder connection_info (the JSON os-initialize_connection returns, after os-brick has
/// attached iSCSI and set data.device_path) into the <see cref="BlockDevice"/> of a volume.
/// </summary>
public static class VolumeConnection
{
    public static readonly IReadOnlyList<string> DriverVolumeTypes = ["local", "file", "iscsi", "rbd", "nfs"];

    public static BlockDevice ToBlockDevice(JsonElement connectionInfo, string volumeId, string nfsMountPointBase, int? bootIndex = null, DiskBus? bus = null)
    {
        const string field = "connection_info";
        SpecValues.CheckToken("volume_id", volumeId, 64);
        if (connectionInfo.ValueKind != JsonValueKind.Object
            || !connectionInfo.TryGetProperty("driver_volume_type", out var typeElement) || typeElement.ValueKind != JsonValueKind.String)
        {
            throw new InvalidInstanceSpecException(field + ".driver_volume_type", null, string.Join(", ", DriverVolumeTypes));
        }

        var data = connectionInfo.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.Object
            ? d
            : throw new InvalidInstanceSpecException(field + ".data", null, "an object");
        var type = typeElement.GetString()!;
        DiskSource source = type switch
        {
            "local" or "file" => new FileDiskSource(RequiredString(data, "device_path"), ParseFormat(data)),
            "iscsi" => new BlockDiskSource(RequiredString(data, "device_path")),
            "rbd" => ParseRbd(data),
            "nfs" => new FileDiskSource(NfsPath(data, nfsMountPointBase), ParseFormat(data)),
            _ => throw new InvalidInstanceSpecException(field + ".driver_volume_type", type, string.Join(", ", DriverVolumeTypes)),
        };
        var readOnly = data.TryGetProperty("access_mode", out var mode) && mode.ValueKind == JsonValueKind.String && mode.GetString() == "ro";
        var discard = data.TryGetProperty("discard", out var discardElement) && discardElement.ValueKind == JsonValueKind.True;
        return new BlockDevice(BlockDeviceRole.Volume, source)
        {
            Serial = volumeId,
            BootIndex = bootIndex,
            Bus = bus,
            ReadOnly = readOnly,
            Discard = discard ? DiscardMode.Unmap : null,
            IoTune = data.TryGetProperty("qos_specs", out var qos) && qos.ValueKind == JsonValueKind.Object ? ParseQos(qos) : null,
        };
    }

    /// <summary>Where the NFS export is mounted on this host: one directory per export under the mount base.</summary>
    public static string NfsMountPoint(string nfsMountPointBase, string export) =>
        Path.Combine(nfsMountPointBase, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(export)))[..32]);

    private static string NfsPath(JsonElement data, string mountBase)
    {
        var export = RequiredString(data, "export");
        var name = RequiredString(data, "name");
        SpecValues.CheckToken("connection_info.data.name", name, 255);
        return Path.Combine(NfsMountPoint(mountBase, export), name);
    }

    private static RbdDiskSource ParseRbd(JsonElement data)
    {
        var name = RequiredString(data, "name");
        var slash = name.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == name.Length - 1)
        {
            throw new InvalidInstanceSpecException("connection_info.data.name", name, "pool/image");
        }

        var hosts = StringArray(data, "hosts");
        var ports = StringArray(data, "ports");
        if (hosts.Count != ports.Count)
        {
            throw new InvalidInstanceSpecException("connection_info.data.ports", string.Join(",", ports), "one port per host");
        }

        var monitors = new RbdMonitor[hosts.Count];
        for (var i = 0; i < hosts.Count; i++)
        {
            monitors[i] = new RbdMonitor(hosts[i], SpecValues.ParseInt($"connection_info.data.ports[{i}]", ports[i], 1, 65535));
        }

        var authEnabled = data.TryGetProperty("auth_enabled", out var auth) && auth.ValueKind == JsonValueKind.True;
        Guid? secret = null;
        if (authEnabled)
        {
            var secretText = RequiredString(data, "secret_uuid");
            secret = Guid.TryParse(secretText, out var g) ? g : throw new InvalidInstanceSpecException("connection_info.data.secret_uuid", secretText, "a UUID");
        }

        return new RbdDiskSource(name[..slash], name[(slash + 1)..], monitors, authEnabled ? RequiredString(data, "auth_username") : null, secret);
    }

    private static IoTune? ParseQos(JsonElement qos)
    {
        long? Read(string key, long min, long max)
        {
            if (!qos.TryGetProperty(key, out var value))
            {
                return null;
            }

            var text = value.ValueKind == JsonValueKind.Number ? value.GetRawText() : value.ToString();
            return SpecValues.ParseLong($"connection_info.data.qos_specs.{key}", text, min, max);
        }

        var tune = FlavorExtraSpecs.ParseIoTune(Read, string.Empty, key => "connection_info.data.qos_specs." + key);
        return tune.IsEmpty ? null : tune;
    }

    private static DiskFormat ParseFormat(JsonElement data) =>
        data.TryGetProperty("format", out var format) && format.ValueKind == JsonValueKind.String
            ? format.GetString() switch
            {
                "raw" => DiskFormat.Raw,
                "qcow2" => DiskFormat.Qcow2,
                var other => throw new InvalidInstanceSpecException("connection_info.data.format", other, "raw, qcow2"),
            }
            : DiskFormat.Raw;

    private static string RequiredString(JsonElement data, string name) =>
        data.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new InvalidInstanceSpecException("connection_info.data." + name, null, "a string");

    private static List<string> StringArray(JsonElement data, string name)
    {
        if (!data.TryGetProperty(name, out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidInstanceSpecException("connection_info.data." + name, null, "a list");
        }

        return array.EnumerateArray()
            .Select(e => e.ValueKind == JsonValueKind.Number ? e.GetRawText() : e.GetString() ?? string.Empty)
            .ToList();
    }
}
