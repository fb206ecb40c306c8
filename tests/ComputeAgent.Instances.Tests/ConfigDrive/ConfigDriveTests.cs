using System.Text;
using System.Text.Json;
using ComputeAgent.Instances.ConfigDrive;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.Tests.DomainXml;
using ComputeAgent.Instances.Tests.Store;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.ConfigDrive;

/// <summary>
/// The config drive's files (Nova's layout and JSON), the drive images xorriso and mkfs.vfat + mcopy
/// make of them (read back with the same tools), and the refusals of hostile inputs.
/// </summary>
public sealed class ConfigDriveTests : IDisposable
{
    private const string PublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBsPq4jUJ8xT9Zb0Yb5fQ3tVvT2m7VfQzJ3kqzXyZ0aB ops@example";

    // Not UTF-8 on purpose: user data is bytes, and must arrive as the same bytes.
    private static readonly byte[] UserData = [0xff, 0xfe, 0x00, (byte)'#', (byte)'!', 0x0a, 0xc3, 0x28, 0x1b];

    private static readonly Dictionary<string, string> HostileMetadata = new(StringComparer.Ordinal)
    {
        ["quote\"d"] = "it's \"quoted\" \\ backslashed",
        ["../../etc/passwd"] = "../../../root/.ssh/authorized_keys",
        ["multi\nline"] = "one\ntwo\r\nthree\ttab",
        ["ünï"] = "値 ✓ 😀",
        ["<script>"] = "</script>&amp;",
    };

    private readonly string scratch = RepositoryPaths.CreateScratch("config-drive");

    public void Dispose() => Directory.Delete(scratch, recursive: true);

    private static InstanceSpec Spec(GuestData? guest = null) => Samples.Typical() with
    {
        Name = "Web Server_1",
        Guest = guest ?? new GuestData
        {
            KeyPair = new KeyPair("ops \"key\" ../x", PublicKey),
            UserData = UserData,
            Metadata = HostileMetadata,
            AdminPassword = "pa\"ss\\word\n",
            AvailabilityZone = "az-1",
            ConfigDrive = true,
        },
    };

    private static JsonElement Json(IReadOnlyList<ConfigDriveFile> files, string path) =>
        JsonDocument.Parse(files.Single(f => f.Path == path).Bytes).RootElement.Clone();

    [Fact]
    public void The_layout_is_novas_latest_and_every_dated_version_with_the_files_that_version_has()
    {
        var files = ConfigDriveContent.For(Spec()).Select(f => f.Path).ToHashSet(StringComparer.Ordinal);

        // Nova's OpenStack metadata versions, FOLSOM to VICTORIA (nova/api/metadata/base.py), and latest.
        string[] versions = ["2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30", "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest"];
        Assert.Equal(versions.Length, files.Count(f => f.StartsWith("openstack/", StringComparison.Ordinal) && f.EndsWith("/meta_data.json", StringComparison.Ordinal)));
        foreach (var version in versions)
        {
            Assert.Contains($"openstack/{version}/meta_data.json", files);
            Assert.Contains($"openstack/{version}/user_data", files);
            Assert.Equal(string.CompareOrdinal(version, "2013-10-17") >= 0, files.Contains($"openstack/{version}/vendor_data.json"));
            Assert.Equal(string.CompareOrdinal(version, "2015-10-15") >= 0, files.Contains($"openstack/{version}/network_data.json"));
            Assert.Equal(string.CompareOrdinal(version, "2016-10-06") >= 0, files.Contains($"openstack/{version}/vendor_data2.json"));
        }

        Assert.Contains("openstack/2012-08-10/meta_data.json", files);
        Assert.Contains("openstack/2018-08-27/meta_data.json", files);
        Assert.Contains("ec2/latest/meta-data.json", files);
        Assert.Contains("ec2/latest/user-data", files);
        Assert.All(files, f => Assert.DoesNotContain("..", f, StringComparison.Ordinal));
    }

    [Fact]
    public void Without_user_data_there_is_no_user_data_file_and_without_a_password_no_admin_pass()
    {
        var files = ConfigDriveContent.For(Spec(new GuestData { ConfigDrive = true }));

        Assert.DoesNotContain(files, f => f.Path.EndsWith("user_data", StringComparison.Ordinal) || f.Path.EndsWith("user-data", StringComparison.Ordinal));
        var meta = Json(files, "openstack/latest/meta_data.json");
        Assert.False(meta.TryGetProperty("admin_pass", out _));
        Assert.False(meta.TryGetProperty("public_keys", out _));
    }

    [Fact]
    public void Meta_data_carries_identity_keys_metadata_and_password_with_hostile_text_escaped_exactly()
    {
        var spec = Spec();
        var files = ConfigDriveContent.For(spec);
        var meta = Json(files, "openstack/latest/meta_data.json");

        Assert.Equal(spec.Uuid.ToString(), meta.GetProperty("uuid").GetString());
        Assert.Equal("Web Server_1", meta.GetProperty("name").GetString());
        Assert.Equal("web-server-1", meta.GetProperty("hostname").GetString());
        Assert.Equal(0, meta.GetProperty("launch_index").GetInt32());
        Assert.Equal("az-1", meta.GetProperty("availability_zone").GetString());
        Assert.Equal(spec.Owner.ProjectId, meta.GetProperty("project_id").GetString());
        Assert.Equal(PublicKey, meta.GetProperty("public_keys").GetProperty("ops \"key\" ../x").GetString());
        var key = Assert.Single(meta.GetProperty("keys").EnumerateArray());
        Assert.Equal(("ops \"key\" ../x", "ssh", PublicKey), (key.GetProperty("name").GetString(), key.GetProperty("type").GetString(), key.GetProperty("data").GetString()));
        Assert.Equal(HostileMetadata, meta.GetProperty("meta").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!));
        Assert.Equal("pa\"ss\\word\n", meta.GetProperty("admin_pass").GetString());
        Assert.Equal(512, Convert.FromBase64String(meta.GetProperty("random_seed").GetString()!).Length);

        // The oldest version predates random_seed and project_id, as in Nova.
        var folsom = Json(files, "openstack/2012-08-10/meta_data.json");
        Assert.False(folsom.TryGetProperty("random_seed", out _));
        Assert.False(folsom.TryGetProperty("project_id", out _));

        // Relaxed but correct: raw UTF-8 for text, escapes for what JSON requires; no raw newline inside a string.
        var text = Encoding.UTF8.GetString(files.Single(f => f.Path == "openstack/latest/meta_data.json").Bytes);
        Assert.Contains("値 ✓", text, StringComparison.Ordinal);
        Assert.Contains("multi\\nline", text, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', text);
        Assert.Equal(UserData, files.Single(f => f.Path == "openstack/latest/user_data").Bytes);

        var ec2 = Json(files, "ec2/latest/meta-data.json");
        Assert.Equal(PublicKey, ec2.GetProperty("public-keys").GetProperty("0").GetProperty("openssh-key").GetString());
        Assert.Equal("az-1", ec2.GetProperty("placement").GetProperty("availability-zone").GetString());
    }

    [Fact]
    public void Network_data_has_a_link_per_port_and_static_or_dhcp_networks_with_dns()
    {
        var spec = Spec() with
        {
            Ports =
            [
                new Port("p-static", "FA:16:3E:00:00:01", VifType.Bridge)
                {
                    BridgeName = "br0",
                    Mtu = 1450,
                    FixedIps = [new PortAddress("10.0.0.5/24", "10.0.0.1"), new PortAddress("2001:db8::5/64")],
                    DnsNameservers = ["10.0.0.2"],
                },
                new Port("p-dhcp", "fa:16:3e:00:00:02", VifType.Ethernet),
            ],
        };
        var network = Json(ConfigDriveContent.For(spec), "openstack/latest/network_data.json");

        var links = network.GetProperty("links").EnumerateArray().ToList();
        Assert.Equal(2, links.Count);
        Assert.Equal(("tapp-static", "p-static", "bridge", 1450, "fa:16:3e:00:00:01"), (links[0].GetProperty("id").GetString(), links[0].GetProperty("vif_id").GetString(), links[0].GetProperty("type").GetString(), links[0].GetProperty("mtu").GetInt32(), links[0].GetProperty("ethernet_mac_address").GetString()));
        Assert.Equal(JsonValueKind.Null, links[1].GetProperty("mtu").ValueKind);
        var networks = network.GetProperty("networks").EnumerateArray().ToList();
        Assert.Equal(["ipv4", "ipv6", "ipv4_dhcp"], networks.Select(n => n.GetProperty("type").GetString()));
        Assert.Equal(("10.0.0.5", "255.255.255.0"), (networks[0].GetProperty("ip_address").GetString(), networks[0].GetProperty("netmask").GetString()));
        Assert.Equal("10.0.0.1", Assert.Single(networks[0].GetProperty("routes").EnumerateArray()).GetProperty("gateway").GetString());
        Assert.Equal(("2001:db8::5", "ffff:ffff:ffff:ffff::"), (networks[1].GetProperty("ip_address").GetString(), networks[1].GetProperty("netmask").GetString()));
        Assert.Equal("tapp-dhcp", networks[2].GetProperty("link").GetString());
        Assert.Equal("10.0.0.2", Assert.Single(network.GetProperty("services").EnumerateArray()).GetProperty("address").GetString());
    }

    [Theory]
    [InlineData("10.0.0.5", "ports[0].fixed_ips[0].cidr")]
    [InlineData("10.0.0.5/33", "ports[0].fixed_ips[0].cidr")]
    [InlineData("../x/24", "ports[0].fixed_ips[0].cidr")]
    public void A_bad_fixed_ip_is_refused_naming_it(string cidr, string field)
    {
        var port = new Port("p1", "fa:16:3e:00:00:01", VifType.Bridge) { BridgeName = "br0", FixedIps = [new PortAddress(cidr)] };
        Assert.Equal(field, Assert.Throws<InvalidInstanceSpecException>(() => port.Validate(0)).Field);
    }

    public static TheoryData<GuestData, string> Refused => new()
    {
        { new GuestData { UserData = new byte[GuestData.MaxUserDataBytes + 1] }, "user_data" },
        { new GuestData { KeyPair = new KeyPair("evil\nname", PublicKey) }, "key_pair.name" },
        { new GuestData { KeyPair = new KeyPair(string.Empty, PublicKey) }, "key_pair.name" },
        { new GuestData { KeyPair = new KeyPair("k", "ssh-ed25519 AAAA\nssh-rsa BBBB") }, "key_pair.public_key" },
        { new GuestData { KeyPair = new KeyPair("k", PublicKey, "pgp") }, "key_pair.type" },
        { new GuestData { Metadata = new Dictionary<string, string> { ["k"] = new string('x', 256) } }, "metadata[k]" },
        { new GuestData { Metadata = new Dictionary<string, string> { ["nul\0"] = "v" } }, "metadata" },
        { new GuestData { Metadata = new Dictionary<string, string> { ["k"] = "lone \ud800 surrogate" } }, "metadata[k]" },
        { new GuestData { Metadata = Enumerable.Range(0, 129).ToDictionary(i => "k" + i, _ => "v") }, "metadata" },
        { new GuestData { Hostname = "../etc" }, "hostname" },
        { new GuestData { Hostname = "Upper" }, "hostname" },
        { new GuestData { AdminPassword = "bell\a" }, "admin_password" },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Hostile_or_oversize_inputs_are_refused_naming_the_field(GuestData guest, string field)
    {
        Assert.Equal(field, Assert.Throws<InvalidInstanceSpecException>(guest.Validate).Field);
    }

    [Fact]
    public void User_data_of_exactly_65535_bytes_is_accepted()
    {
        new GuestData { UserData = new byte[GuestData.MaxUserDataBytes] }.Validate();
        Assert.Equal(65_535, GuestData.MaxUserDataBytes);
    }

    [Fact]
    public void The_guest_data_round_trips_through_the_store_json()
    {
        var spec = Spec() with { Ports = [new Port("p1", "fa:16:3e:00:00:01", VifType.Bridge) { BridgeName = "br0", FixedIps = [new PortAddress("10.0.0.5/24", "10.0.0.1")], DnsNameservers = ["10.0.0.2"] }] };
        var back = JsonSerializer.Deserialize<InstanceSpec>(JsonSerializer.Serialize(spec, StoreJson.Options), StoreJson.Options)!;

        DeepAssert.Equal(spec, back);
        Assert.Equal(UserData, back.Guest.UserData);
    }

    [Fact]
    public void A_spec_stored_before_guest_data_existed_reads_back_with_none()
    {
        var json = JsonSerializer.Serialize(Samples.Typical(), StoreJson.Options).Replace(",\"guest\":", ",\"old_guest\":", StringComparison.Ordinal);
        var back = JsonSerializer.Deserialize<InstanceSpec>(json, StoreJson.Options)!;

        Assert.False(back.Guest.ConfigDrive);
        Assert.Null(back.Guest.KeyPair);
    }

    [Fact]
    public async Task The_iso_is_labelled_config_2_with_joliet_and_rock_ridge_and_holds_the_files_byte_for_byte()
    {
        var spec = Spec();
        var instanceDir = Directory.CreateDirectory(Path.Combine(scratch, "instances", spec.Uuid.ToString())).FullName;
        var before = Tree(scratch);

        var drive = await new ConfigDriveBuilder(ConfigDriveFormat.Iso9660).BuildAsync(spec, instanceDir, CancellationToken.None);

        Assert.Equal(Path.Combine(instanceDir, "disk.config"), drive);
        Assert.Equal([.. before, Path.Combine("instances", spec.Uuid.ToString(), "disk.config")], Tree(scratch));
        var pvd = await Run("xorriso", "-indev", drive, "-pvd_info");
        Assert.Matches(@"Volume Id\s*:\s*config-2", pvd);
        Assert.Contains("Rock_Ridge", await Run("xorriso", "-indev", drive, "-toc"), StringComparison.Ordinal);

        Assert.True(HasJolietDescriptor(await File.ReadAllBytesAsync(drive)), "no Joliet supplementary volume descriptor");

        var extracted = Path.Combine(scratch, "extracted");
        await Run("xorriso", "-osirrox", "on", "-indev", drive, "-extract", "/", extracted);
        foreach (var file in ConfigDriveContent.For(spec).Where(f => !f.Path.EndsWith("meta_data.json", StringComparison.Ordinal)))
        {
            Assert.Equal(file.Bytes, await File.ReadAllBytesAsync(Path.Combine(extracted, file.Path)));
        }

        var meta = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(extracted, "openstack", "latest", "meta_data.json"))).RootElement;
        Assert.Equal(HostileMetadata, meta.GetProperty("meta").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!));
    }

    [Fact]
    public async Task The_vfat_drive_is_labelled_config_2_and_holds_the_files()
    {
        var spec = Spec();
        var instanceDir = Directory.CreateDirectory(Path.Combine(scratch, spec.Uuid.ToString())).FullName;

        var drive = await new ConfigDriveBuilder(ConfigDriveFormat.Vfat).BuildAsync(spec, instanceDir, CancellationToken.None);

        Assert.Equal(["disk.config"], Directory.GetFileSystemEntries(instanceDir).Select(Path.GetFileName));
        Assert.Contains("config-2", await Run("fatlabel", drive), StringComparison.OrdinalIgnoreCase);
        var copy = Path.Combine(scratch, "user_data.out");
        await Run("mcopy", "-n", "-i", drive, "::/openstack/latest/user_data", copy);
        Assert.Equal(UserData, await File.ReadAllBytesAsync(copy));
    }

    [Fact]
    public async Task A_rebuild_replaces_the_drive_and_a_failed_build_leaves_the_old_one_and_no_staging()
    {
        var spec = Spec();
        var instanceDir = Directory.CreateDirectory(Path.Combine(scratch, spec.Uuid.ToString())).FullName;
        var builder = new ConfigDriveBuilder(ConfigDriveFormat.Iso9660);
        var drive = await builder.BuildAsync(spec, instanceDir, CancellationToken.None);
        var first = await File.ReadAllBytesAsync(drive);

        var refused = spec with { Guest = spec.Guest with { UserData = new byte[GuestData.MaxUserDataBytes + 1] } };
        await Assert.ThrowsAsync<InvalidInstanceSpecException>(() => builder.BuildAsync(refused, instanceDir, CancellationToken.None));
        Assert.Equal(first, await File.ReadAllBytesAsync(drive));

        await builder.BuildAsync(spec with { Guest = spec.Guest with { UserData = [1, 2, 3] } }, instanceDir, CancellationToken.None);
        Assert.NotEqual(first, await File.ReadAllBytesAsync(drive));
        Assert.Equal(["disk.config"], Directory.GetFileSystemEntries(instanceDir).Select(Path.GetFileName));
    }

    /// <summary>ECMA-119 volume descriptors from sector 16: Joliet is a supplementary one (type 2) with a UCS-2 escape sequence.</summary>
    private static bool HasJolietDescriptor(byte[] iso)
    {
        for (var sector = 16; (sector + 1) * 2048 <= iso.Length; sector++)
        {
            var d = iso.AsSpan(sector * 2048, 2048);
            if (d[0] == 255 || !d[1..6].SequenceEqual("CD001"u8))
            {
                return false;
            }

            if (d[0] == 2 && d[88] == '%' && d[89] == '/' && d[90] is (byte)'@' or (byte)'C' or (byte)'E')
            {
                return true;
            }
        }

        return false;
    }

    private static List<string> Tree(string root) =>
        [.. Directory.GetFileSystemEntries(root, "*", SearchOption.AllDirectories).Where(File.Exists).Select(p => Path.GetRelativePath(root, p)).Order(StringComparer.Ordinal)];

    private static async Task<string> Run(string program, params string[] arguments)
    {
        var result = await ProcessRunner.RunAsync(program, arguments, TimeSpan.FromSeconds(60));
        result.EnsureSuccess(program);
        return result.StandardOutput + result.StandardError;
    }
}
