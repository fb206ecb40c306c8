using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Model;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>What the guest learns about its platform: SMBIOS sysinfo, and the config drive device when one is wanted.</summary>
public sealed class DomainXmlGuestDataTests
{
    private static readonly Guid Uuid = Guid.Parse("7c1d2e3f-4a5b-4c6d-8e7f-901234567890");

    [Fact]
    public void Smbios_defaults_are_novas_so_cloud_init_sees_openstack_and_the_os_reads_sysinfo()
    {
        var doc = Samples.BuildDocument(Samples.Typical(Uuid));

        Assert.Equal("OpenStack Foundation", doc.Value("/domain/sysinfo[@type='smbios']/system/entry[@name='manufacturer']"));
        Assert.Equal("OpenStack Nova", doc.Value("/domain/sysinfo[@type='smbios']/system/entry[@name='product']"));
        Assert.Matches(@"^\d+\.\d+\.\d+$", doc.Value("/domain/sysinfo[@type='smbios']/system/entry[@name='version']"));
        Assert.Equal(Uuid.ToString(), doc.Value("/domain/sysinfo[@type='smbios']/system/entry[@name='serial']"));
        Assert.Equal(Uuid.ToString(), doc.Value("/domain/sysinfo[@type='smbios']/system/entry[@name='uuid']"));
        Assert.Equal("Virtual Machine", doc.Value("/domain/sysinfo[@type='smbios']/system/entry[@name='family']"));
        doc.One("/domain/os/smbios[@mode='sysinfo']");
    }

    [Fact]
    public void Smbios_values_come_from_the_host_settings_escaped()
    {
        var host = Samples.Host with { Smbios = new SmbiosSystem { Manufacturer = "Acme <Cloud> & Co", Product = "OpenStack Compute", Version = string.Empty, Family = "Cloud \"VM\"" } };
        var doc = Samples.BuildDocument(Samples.Typical(Uuid), host);

        Assert.Equal("Acme <Cloud> & Co", doc.Value("/domain/sysinfo/system/entry[@name='manufacturer']"));
        Assert.Equal("OpenStack Compute", doc.Value("/domain/sysinfo/system/entry[@name='product']"));
        doc.None("/domain/sysinfo/system/entry[@name='version']");
        Assert.Equal("Cloud \"VM\"", doc.Value("/domain/sysinfo/system/entry[@name='family']"));
    }

    [Fact]
    public void An_smbios_value_with_a_newline_is_refused_naming_the_setting()
    {
        var host = Samples.Host with { Smbios = new SmbiosSystem { Product = "Open\nStack" } };
        Assert.Equal("host.sysinfo_product", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(host)).Field);
    }

    public static TheoryData<string, GuestData, Dictionary<string, string>, bool> ConfigDriveCases => new()
    {
        { "asked for", new GuestData { ConfigDrive = true }, [], false },
        { "image img_config_drive=mandatory", new GuestData(), new() { ["img_config_drive"] = "mandatory" }, false },
        { "host force_config_drive", new GuestData(), [], true },
    };

    [Theory]
    [MemberData(nameof(ConfigDriveCases))]
    public async Task A_wanted_config_drive_is_a_read_only_cdrom_on_novas_default_bus_in_the_instance_folder(string why, GuestData guest, Dictionary<string, string> properties, bool force)
    {
        var host = Samples.Host with { ForceConfigDrive = force };
        await using var session = new LibvirtSession(new LibvirtSessionOptions { Uri = "test:///default" }, NullLogger<LibvirtSession>.Instance);
        var driver = new InstanceDriver(session, new DomainXmlBuilder(host), new EngineOptions());
        var spec = driver.WithConfigDrive(Samples.Typical(Uuid) with { Guest = guest, Image = Samples.Image(properties) });

        var doc = Samples.BuildDocument(spec, host);
        var drive = doc.One($"/domain/devices/disk[@device='cdrom' and source/@file='/var/lib/compute-agent/instances/{Uuid}/disk.config']");
        Assert.True(drive.Element("readonly") is not null, why);
        Assert.Equal("ide", drive.Element("target")!.Attribute("bus")!.Value);
        Assert.Equal("raw", drive.Element("driver")!.Attribute("type")!.Value);

        // Asked twice (a rebuild reuses the spec): still one drive.
        Assert.Single(driver.WithConfigDrive(spec).BlockDevices, b => b.Role == BlockDeviceRole.ConfigDrive);
    }

    [Fact]
    public async Task Without_a_reason_there_is_no_config_drive_and_vfat_makes_it_a_disk_on_the_disk_bus()
    {
        await using var session = new LibvirtSession(new LibvirtSessionOptions { Uri = "test:///default" }, NullLogger<LibvirtSession>.Instance);
        var plain = new InstanceDriver(session, new DomainXmlBuilder(Samples.Host), new EngineOptions());
        var typical = Samples.Typical(Uuid);
        Assert.Same(typical, plain.WithConfigDrive(typical));

        var vfatHost = Samples.Host with { ConfigDriveFormat = ConfigDriveFormat.Vfat };
        var vfat = new InstanceDriver(session, new DomainXmlBuilder(vfatHost), new EngineOptions());
        var doc = Samples.BuildDocument(vfat.WithConfigDrive(Samples.Typical(Uuid) with { Guest = new GuestData { ConfigDrive = true } }), vfatHost);
        doc.One($"/domain/devices/disk[@device='disk' and source/@file='/var/lib/compute-agent/instances/{Uuid}/disk.config']/target[@bus='virtio']");
    }

    [Fact]
    public void A_kernel_image_cannot_be_booted_as_the_root_disk()
    {
        var spec = Samples.Typical(Uuid) with { Image = Samples.Image(diskFormat: "aki") };
        Assert.Equal("image.disk_format", Assert.Throws<InvalidInstanceSpecException>(() => Samples.BuildDocument(spec)).Field);
    }
}
