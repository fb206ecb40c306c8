using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Store;

/// <summary>
/// The JSON of spec_json, pre_resize_json and created_json: snake_case names and enum names
/// (readable with sqlite3), dictionary keys as given (extra_specs, image properties).
/// </summary>
internal static class StoreJson
{
    /// <summary>
    /// <see cref="DiskSource"/> is abstract: without a discriminator its subtypes cannot be read
    /// back. Declared here, not on Model/, so the model stays free of storage concerns; a subtype
    /// missing here fails serialization rather than losing data.
    /// </summary>
    internal static readonly IReadOnlyList<(Type Type, string Kind)> DiskSourceKinds =
    [
        (typeof(FileDiskSource), "file"),
        (typeof(BlockDiskSource), "block"),
        (typeof(RbdDiskSource), "rbd"),
    ];

    public static readonly JsonSerializerOptions Options = CreateOptions();

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    public static T Deserialize<T>(string json, string column)
        where T : class =>
        JsonSerializer.Deserialize<T>(json, Options) ?? throw new InvalidDataException($"the state database holds null in {column}");

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            // Computed properties (Port.EffectiveDeviceName, ImageMeta.IsIso, IoTune.IsEmpty) are derived, not state.
            IgnoreReadOnlyProperties = true,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
            TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { DeclareDiskSourceKinds } },
        };
        options.MakeReadOnly();
        return options;
    }

    private static void DeclareDiskSourceKinds(JsonTypeInfo info)
    {
        if (info.Type != typeof(DiskSource))
        {
            return;
        }

        info.PolymorphismOptions = new JsonPolymorphismOptions
        {
            TypeDiscriminatorPropertyName = "kind",
            UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization,
        };
        foreach (var (type, kind) in DiskSourceKinds)
        {
            info.PolymorphismOptions.DerivedTypes.Add(new JsonDerivedType(type, kind));
        }
    }
}
