using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Model;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>Hostile values come out escaped (and read back exactly) or are refused: never an XML injection.</summary>
public sealed class DomainXmlHostileValueTests
{
    private static readonly string TenKilobytes = new('<', 10 * 1024);

    [Theory]
    [InlineData("</name><devices><disk type='file' device='disk'><source file='/etc/shadow'/></disk></devices><name>")]
    [InlineData("a & b < c > d \" e ' f")]
    [InlineData("]]><!-- --><?pi x?>&lt;&amp;")]
    [InlineData("</agent:name><agent:uuid>00000000-0000-0000-0000-000000000001</agent:uuid><agent:name>")]
    [InlineData("名前 ✓ 🚀")]
    public void Markup_in_names_and_ids_is_escaped_and_reads_back_exactly(string hostile)
    {
        var spec = Samples.Typical() with
        {
            Name = hostile,
            Flavor = Samples.Flavor() with { Name = hostile },
            Image = Samples.Image() with { Id = hostile },
            Owner = new InstanceOwner(hostile, hostile),
        };
        var xml = new DomainXmlBuilder(Samples.Host).Build(spec);
        var doc = System.Xml.Linq.XDocument.Parse(xml);
        Assert.Single(doc.All("/domain/devices"));
        Assert.Single(doc.All("/domain/devices/disk"));
        doc.None("//disk[source/@file='/etc/shadow']");
        Assert.Single(doc.All("/domain/name"));
        Assert.Single(doc.All("/domain/metadata/a:instance/a:uuid"));
        Assert.Equal(InstanceMetadata.From(spec), InstanceMetadata.Parse(xml));
    }

    [Fact]
    public async Task Markup_in_paths_and_command_lines_is_escaped_and_schema_valid()
    {
        var uuid = Guid.NewGuid();
        const string path = "/var/lib/compute-agent/instances/it's <a> \"disk\" & more";
        var spec = Samples.Typical(uuid) with
        {
            BlockDevices = [new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(path, DiskFormat.Qcow2))],
            Image = Samples.Image(new Dictionary<string, string> { ["kernel_id"] = "k", ["os_command_line"] = "console=ttyS0 init='/bin/sh -c \"a<b&&c>d\"'" }),
            KernelBoot = new KernelBoot("/var/cache/<kernel>&'\"", null),
        };
        var xml = new DomainXmlBuilder(Samples.Host).Build(spec);
        var doc = System.Xml.Linq.XDocument.Parse(xml);
        Assert.Equal(path, doc.One("/domain/devices/disk/source").Attribute("file")!.Value);
        Assert.Equal("console=ttyS0 init='/bin/sh -c \"a<b&&c>d\"'", doc.Value("/domain/os/cmdline"));
        Assert.Equal("/var/cache/<kernel>&'\"", doc.Value("/domain/os/kernel"));
        await DomainXmlLibvirtTests.AssertSchemaValid(xml);
    }

    // Looked up by name: xunit serialises theory data as UTF-8, which would turn a lone surrogate into U+FFFD.
    private static readonly Dictionary<string, string> Refused = new(StringComparer.Ordinal)
    {
        ["newline"] = "web\n</name>",
        ["carriage return"] = "web\r1",
        ["tab"] = "web\t1",
        ["NUL"] = "web\01",
        ["10 KB"] = TenKilobytes,
        ["lone surrogate"] = "web\ud800",
        ["empty"] = string.Empty,
    };

    public static IEnumerable<object[]> RefusedTexts => Refused.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(RefusedTexts))]
    public void Names_with_control_characters_or_beyond_255_characters_are_refused(string what)
    {
        var value = Refused[what];
        var error = Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(Samples.Typical() with { Name = value }));
        Assert.Equal("name", error.Field);
        Assert.True(error.Message.Length < 600, $"{what}: the message quotes a bounded prefix of the value");
    }

    [Theory]
    [MemberData(nameof(RefusedTexts))]
    public void Owner_and_flavor_names_with_such_values_are_refused(string what)
    {
        var value = Refused[what];
        Assert.Equal("owner.project_id", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(Samples.Typical() with { Owner = new InstanceOwner(value, "u") })).Field);
        Assert.Equal("flavor.name", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(Samples.Typical() with { Flavor = Samples.Flavor() with { Name = value } })).Field);
    }

    [Theory]
    [InlineData("/var/lib/compute-agent/instances/../../../etc/shadow")]
    [InlineData("/var/lib/compute-agent/instances/./disk")]
    [InlineData("/var/lib//disk")]
    [InlineData("../disk")]
    [InlineData("/var/lib/compute-agent/instances/x/..")]
    [InlineData("/var/lib/disk\n<source file='/etc/shadow'/>")]
    public void Paths_with_dot_segments_relative_or_control_characters_are_refused(string path)
    {
        Assert.Equal("block_devices[0].path", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(
            Samples.Typical() with { BlockDevices = [new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(path, DiskFormat.Qcow2))] })).Field);
        Assert.Equal("kernel_boot.kernel_path", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(
            Samples.Typical() with { KernelBoot = new KernelBoot(path, null) })).Field);
        Assert.Equal("ports[0].vhostuser_socket", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(
            Samples.Typical() with { Ports = [new Port("p", "fa:16:3e:00:00:01", VifType.VhostUser) { VhostUserSocketPath = path }] })).Field);
    }

    [Fact]
    public void A_ten_kilobyte_command_line_or_one_with_a_newline_is_refused()
    {
        foreach (var cmdline in new[] { new string('a', 10 * 1024), "console=ttyS0\ninit=/bin/sh" })
        {
            var spec = Samples.Typical() with
            {
                Image = Samples.Image(new Dictionary<string, string> { ["kernel_id"] = "k", ["os_command_line"] = cmdline }),
                KernelBoot = new KernelBoot("/k", null),
            };
            Assert.Equal("image.properties[os_command_line]", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(spec)).Field);
        }
    }

    [Fact]
    public void Hostile_values_in_properties_the_agent_does_not_read_never_reach_the_document()
    {
        var spec = Samples.Typical() with
        {
            Image = Samples.Image(new Dictionary<string, string> { ["description"] = "</domain>" + TenKilobytes, ["hw_rescue_bus"] = "\0" }),
        };
        var xml = new DomainXmlBuilder(Samples.Host).Build(spec);
        Assert.DoesNotContain("description", xml, StringComparison.Ordinal);
        Assert.True(xml.Length < 8 * 1024);
    }

    [Fact]
    public void Hostile_tap_bridge_and_port_ids_are_refused()
    {
        Assert.Equal("ports[0].devname", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(
            Samples.Typical() with { Ports = [Samples.BridgePort() with { DeviceName = "t'/><x" }] })).Field);
        Assert.Equal("ports[0].bridge", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(
            Samples.Typical() with { Ports = [Samples.BridgePort() with { BridgeName = "br\"0" }] })).Field);
        Assert.Equal("ports[0].id", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(
            Samples.Typical() with { Ports = [Samples.BridgePort() with { Id = "<p>" }] })).Field);
    }
}
