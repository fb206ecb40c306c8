using System.Text.Json;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using Xunit;
using Xunit.Sdk;

namespace ComputeAgent.Instances.Tests.Store;

public sealed class SpecJsonTests
{
    private static InstanceSpec RoundTrip(InstanceSpec spec) => JsonSerializer.Deserialize<InstanceSpec>(JsonSerializer.Serialize(spec, StoreJson.Options), StoreJson.Options)!;

    [Fact]
    public void The_maximal_spec_round_trips_member_by_member()
    {
        var spec = Samples.Maximal(Guid.NewGuid()) with
        {
            CreatedAt = new DateTimeOffset(2025, 6, 7, 8, 9, 10, 123, TimeSpan.FromHours(7)),
            KernelBoot = new KernelBoot("/var/lib/compute-agent/_base/kernel", "/var/lib/compute-agent/_base/ramdisk"),
        };
        spec = spec with
        {
            Ports = [.. spec.Ports, new Port("p5", "fa:16:3e:00:00:05", VifType.Bridge) { BridgeName = "br0", Bandwidth = new Bandwidth(new BandwidthLimit(100, 200, 300), null) }],
            BlockDevices = [.. spec.BlockDevices, new BlockDevice(BlockDeviceRole.Volume, new RbdDiskSource("p", "i", [new RbdMonitor("mon", 6789)], null, null)) { IoTune = IoTune.None }],
        };

        DeepAssert.Equal(spec, RoundTrip(spec));
    }

    [Fact]
    public void The_deep_comparison_notices_a_changed_dictionary_value_and_a_changed_disk_source()
    {
        var spec = Samples.Maximal(Guid.NewGuid());
        var flavorChanged = spec with { Flavor = spec.Flavor with { ExtraSpecs = new Dictionary<string, string>(spec.Flavor.ExtraSpecs!) { ["hw:numa_nodes"] = "1" } } };
        var diskChanged = spec with { BlockDevices = [.. spec.BlockDevices.Select(d => d.Source is RbdDiskSource rbd ? d with { Source = rbd with { Monitors = [rbd.Monitors[0]] } } : d)] };

        Assert.Throws<TrueException>(() => DeepAssert.Equal(spec, flavorChanged));
        Assert.Throws<TrueException>(() => DeepAssert.Equal(spec, diskChanged));
    }

    [Fact]
    public void Every_disk_source_type_of_the_model_has_a_kind()
    {
        var sourceTypes = typeof(DiskSource).Assembly.GetTypes().Where(t => t.IsSubclassOf(typeof(DiskSource)) && !t.IsAbstract).ToHashSet();

        Assert.Equal(sourceTypes, StoreJson.DiskSourceKinds.Select(k => k.Type).ToHashSet());
    }

    [Fact]
    public void The_json_is_readable_names_and_carries_no_computed_properties()
    {
        using var json = JsonDocument.Parse(JsonSerializer.Serialize(Samples.Maximal(Guid.NewGuid()), StoreJson.Options));
        var root = json.RootElement;
        var devices = root.GetProperty("block_devices").EnumerateArray().ToList();
        var ports = root.GetProperty("ports").EnumerateArray().ToList();

        Assert.Equal("rbd", devices[^1].GetProperty("source").GetProperty("kind").GetString());
        Assert.Equal("direct_sync", devices[^2].GetProperty("cache").GetString());
        Assert.Equal("vhost_user", ports[^1].GetProperty("vif_type").GetString());
        Assert.Equal("dedicated", root.GetProperty("flavor").GetProperty("extra_specs").GetProperty("hw:cpu_policy").GetString());
        Assert.False(ports[0].TryGetProperty("effective_device_name", out _));
        Assert.False(root.GetProperty("image").TryGetProperty("is_iso", out _));
    }

    [Fact]
    public void A_spec_missing_a_required_member_is_refused_not_defaulted()
    {
        var json = JsonSerializer.Serialize(Samples.Typical(Guid.NewGuid()), StoreJson.Options);
        using var document = JsonDocument.Parse(json);
        var withoutFlavor = "{" + string.Join(",", document.RootElement.EnumerateObject().Where(p => p.Name != "flavor").Select(p => p.ToString())) + "}";

        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<InstanceSpec>(withoutFlavor, StoreJson.Options));
    }
}
