using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Model;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>For each input, the element it must produce (XPath on the built document).</summary>
public sealed class DomainXmlElementTests
{
    private static readonly Guid Uuid = Guid.Parse("5b3c2a10-1111-4222-8333-444455556666");

    private static InstanceSpec WithFlavorSpecs(params (string Key, string Value)[] specs) => Samples.Typical(Uuid) with
    {
        Flavor = Samples.Flavor(specs.ToDictionary(s => s.Key, s => s.Value)),
    };

    private static InstanceSpec WithImageProperties(params (string Key, string Value)[] properties) => Samples.Typical(Uuid) with
    {
        Image = Samples.Image(properties.ToDictionary(s => s.Key, s => s.Value)),
    };

    [Fact]
    public void The_typical_instance_has_identity_size_and_the_host_virt_type()
    {
        var doc = Samples.BuildDocument(Samples.Typical(Uuid));
        Assert.Equal("qemu", doc.Value("/domain/@type"));
        Assert.Equal("instance-" + Uuid, doc.Value("/domain/name"));
        Assert.Equal(Uuid.ToString(), doc.Value("/domain/uuid"));
        Assert.Equal("2048", doc.Value("/domain/memory[@unit='MiB']"));
        Assert.Equal("2", doc.Value("/domain/vcpu"));
        Assert.Equal("hvm", doc.Value("/domain/os/type[@arch='x86_64' and @machine='pc']"));
        Assert.Equal("hd", doc.Value("/domain/os/boot/@dev"));
        doc.One("/domain/features/acpi");
        doc.One("/domain/cpu[@mode='host-model']/topology[@sockets='2' and @cores='1' and @threads='1']");
        doc.One("/domain/clock[@offset='utc']/timer[@name='rtc' and @tickpolicy='catchup']");
        doc.One("/domain/sysinfo/system/entry[@name='serial' and text()='" + Uuid + "']");
        Assert.Equal("destroy", doc.Value("/domain/on_poweroff"));
        doc.One("/domain/devices/memballoon[@model='virtio']");
    }

    [Theory]
    [InlineData(VirtType.Kvm, "kvm")]
    [InlineData(VirtType.Qemu, "qemu")]
    public void Virt_type_sets_the_domain_type(VirtType virtType, string expected)
    {
        var host = Samples.Host with { VirtType = virtType };
        Assert.Equal(expected, Samples.BuildDocument(Samples.Typical(Uuid), host).Value("/domain/@type"));
    }

    [Fact]
    public void Cpu_modes_produce_their_cpu_element()
    {
        Samples.BuildDocument(Samples.Typical(Uuid), Samples.Host with { VirtType = VirtType.Kvm, CpuMode = CpuMode.HostPassthrough }).One("/domain/cpu[@mode='host-passthrough']");
        var custom = Samples.BuildDocument(Samples.Typical(Uuid), Samples.Host with { CpuMode = CpuMode.Custom, CpuModel = "Haswell-noTSX" });
        Assert.Equal("Haswell-noTSX", custom.Value("/domain/cpu[@mode='custom' and @match='exact']/model[@fallback='forbid']"));
        Samples.BuildDocument(Samples.Typical(Uuid), Samples.Host with { CpuMode = CpuMode.None }).One("/domain/cpu[not(@mode)]/topology");
    }

    [Fact]
    public void The_agent_metadata_names_instance_flavor_image_and_owner()
    {
        var doc = Samples.BuildDocument(Samples.Typical(Uuid));
        var root = "/domain/metadata/a:instance";
        Assert.Equal(Uuid.ToString(), doc.Value(root + "/a:uuid"));
        Assert.Equal("web-1", doc.Value(root + "/a:name"));
        Assert.Equal("2025-01-02T03:04:05.0000000Z", doc.Value(root + "/a:creationTime"));
        Assert.Equal("m1.small", doc.Value(root + "/a:flavor/@name"));
        Assert.Equal("2", doc.Value(root + "/a:flavor/a:vcpus"));
        Assert.Equal("2048", doc.Value(root + "/a:flavor/a:memory"));
        Assert.Equal("20", doc.Value(root + "/a:flavor/a:disk"));
        Assert.Equal("a1b2c3d4-0000-4000-8000-000000000001", doc.Value(root + "/a:image/@uuid"));
        Assert.Equal("6f3e1a2b3c4d4e5f8a9b0c1d2e3f4a5b", doc.Value(root + "/a:owner/a:project/@uuid"));
        Assert.Equal("0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5", doc.Value(root + "/a:owner/a:user/@uuid"));
    }

    [Fact]
    public void The_metadata_reads_back_to_what_was_written()
    {
        var spec = Samples.Maximal(Uuid);
        var xml = new DomainXmlBuilder(Samples.Host).Build(spec);
        var metadata = InstanceMetadata.Parse(xml);
        Assert.Equal(InstanceMetadata.From(spec), metadata);
        Assert.Equal(new FlavorSummary("m1.xlarge.pinned", 4, 4096, 40, 10, 1), metadata!.Flavor);

        var elementOnly = Samples.BuildDocument(spec).One("/domain/metadata/a:instance").ToString();
        Assert.Equal(metadata, InstanceMetadata.Parse(elementOnly));
        Assert.Null(InstanceMetadata.Parse("<domain type='qemu'><name>not-ours</name></domain>"));
        Assert.Throws<InvalidDataException>(() => InstanceMetadata.Parse($"<instance xmlns='{InstanceMetadata.Namespace}'><uuid>x</uuid></instance>"));
    }

    [Fact]
    public void The_serial_console_is_a_pty_logged_to_the_instance_file_and_vnc_listens_on_loopback()
    {
        var doc = Samples.BuildDocument(Samples.Typical(Uuid));
        Assert.Equal($"/var/lib/compute-agent/instances/{Uuid}/console.log", doc.Value("/domain/devices/serial[@type='pty']/log/@file"));
        doc.One("/domain/devices/serial[@type='pty']/target[@port='0']");
        doc.One("/domain/devices/console[@type='pty']/target[@type='serial' and @port='0']");
        doc.One("/domain/devices/graphics[@type='vnc' and @autoport='yes' and @listen='127.0.0.1']/listen[@type='address' and @address='127.0.0.1']");
        doc.None("/domain/devices/graphics[@port]");
    }

    [Fact]
    public void The_root_overlay_is_a_qcow2_virtio_disk_with_cache_none_when_direct_io_works()
    {
        var doc = Samples.BuildDocument(Samples.Typical(Uuid));
        var disk = "/domain/devices/disk[@type='file' and @device='disk']";
        doc.One(disk + "/driver[@name='qemu' and @type='qcow2' and @cache='none']");
        Assert.Equal($"/var/lib/compute-agent/instances/{Uuid}/disk", doc.Value(disk + "/source/@file"));
        doc.One(disk + "/target[@dev='vda' and @bus='virtio']");
    }

    [Fact]
    public void Without_direct_io_disks_default_to_writeback()
    {
        var doc = Samples.BuildDocument(Samples.Typical(Uuid), Samples.Host with { DirectIoSupported = false });
        doc.One("/domain/devices/disk/driver[@cache='writeback']");
    }

    [Fact]
    public void Cpu_policy_dedicated_pins_each_vcpu_to_its_claimed_host_cpu()
    {
        var spec = WithFlavorSpecs(("hw:cpu_policy", "dedicated")) with { PinnedCpus = [5, 3] };
        var doc = Samples.BuildDocument(spec);
        doc.One("/domain/cputune/vcpupin[@vcpu='0' and @cpuset='5']");
        doc.One("/domain/cputune/vcpupin[@vcpu='1' and @cpuset='3']");
        doc.One("/domain/cputune/emulatorpin[@cpuset='3,5']");

        // A pinned guest has one implicit NUMA cell (Nova).
        doc.One("/domain/cpu/numa/cell[@id='0' and @cpus='0-1' and @memory='2048' and @unit='MiB']");
    }

    [Fact]
    public void Cpu_policy_shared_floats_on_the_shared_set()
    {
        var doc = Samples.BuildDocument(WithFlavorSpecs(("hw:cpu_policy", "shared")), Samples.Host with { SharedCpuSet = [0, 1, 2, 3, 8] });
        Assert.Equal("0-3,8", doc.Value("/domain/vcpu/@cpuset"));
        doc.None("/domain/cputune");
    }

    [Theory]
    [InlineData(4, null, null, null, null, null, null, 4, 1, 1)]
    [InlineData(4, "2", null, null, null, null, null, 2, 2, 1)]
    [InlineData(8, null, "4", "2", null, null, null, 1, 4, 2)]
    [InlineData(8, null, null, null, "2", null, null, 2, 4, 1)]
    [InlineData(8, null, null, null, "1", "2", null, 1, 2, 4)]
    [InlineData(6, null, null, "2", null, null, "2", 3, 1, 2)]
    public void Cpu_topology_follows_the_preferred_and_maximum_values(
        int vcpus, string? sockets, string? cores, string? threads, string? maxSockets, string? maxCores, string? maxThreads,
        int expectedSockets, int expectedCores, int expectedThreads)
    {
        var specs = new Dictionary<string, string>();
        void Add(string key, string? value)
        {
            if (value is not null)
            {
                specs[key] = value;
            }
        }

        Add("hw:cpu_sockets", sockets);
        Add("hw:cpu_cores", cores);
        Add("hw:cpu_threads", threads);
        Add("hw:cpu_max_sockets", maxSockets);
        Add("hw:cpu_max_cores", maxCores);
        Add("hw:cpu_max_threads", maxThreads);
        var doc = Samples.BuildDocument(Samples.Typical(Uuid) with { Flavor = Samples.Flavor(specs, vcpus) });
        doc.One($"/domain/cpu/topology[@sockets='{expectedSockets}' and @cores='{expectedCores}' and @threads='{expectedThreads}']");
    }

    [Fact]
    public void Image_topology_preferences_replace_the_flavor_ones_within_its_maximums()
    {
        var spec = Samples.Typical(Uuid) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:cpu_sockets"] = "4", ["hw:cpu_max_sockets"] = "4" }, vcpus: 4),
            Image = Samples.Image(new Dictionary<string, string> { ["hw_cpu_sockets"] = "1", ["hw_cpu_cores"] = "4" }),
        };
        Samples.BuildDocument(spec).One("/domain/cpu/topology[@sockets='1' and @cores='4' and @threads='1']");
    }

    [Theory]
    [InlineData("large", "2048")]
    [InlineData("1GB", "1048576")]
    [InlineData("2048", "2048")]
    [InlineData("any", "2048")]
    public void Mem_page_size_backs_memory_with_huge_pages(string value, string expectedKiB)
    {
        var doc = Samples.BuildDocument(WithFlavorSpecs(("hw:mem_page_size", value)));
        doc.One($"/domain/memoryBacking/hugepages/page[@size='{expectedKiB}' and @unit='KiB']");
        doc.One("/domain/cpu/numa/cell[@id='0']");
    }

    [Theory]
    [InlineData("small")]
    [InlineData("4")]
    public void Mem_page_size_small_keeps_normal_pages(string value) =>
        Samples.BuildDocument(WithFlavorSpecs(("hw:mem_page_size", value))).None("/domain/memoryBacking");

    [Fact]
    public void Image_mem_page_size_applies_when_the_flavor_says_large()
    {
        var spec = Samples.Typical(Uuid) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:mem_page_size"] = "large" }),
            Image = Samples.Image(new Dictionary<string, string> { ["hw_mem_page_size"] = "1GB" }),
        };
        Samples.BuildDocument(spec).One("/domain/memoryBacking/hugepages/page[@size='1048576']");
    }

    [Fact]
    public void Numa_nodes_split_vcpus_and_memory_evenly()
    {
        var spec = Samples.Typical(Uuid) with { Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:numa_nodes"] = "2" }, vcpus: 4, ramMiB: 4096) };
        var doc = Samples.BuildDocument(spec);
        doc.One("/domain/cpu/numa/cell[@id='0' and @cpus='0-1' and @memory='2048']");
        doc.One("/domain/cpu/numa/cell[@id='1' and @cpus='2-3' and @memory='2048']");
        Assert.Equal(2, doc.All("/domain/cpu/numa/cell").Count);
    }

    [Theory]
    [InlineData("reset", "reset")]
    [InlineData("pause", "pause")]
    [InlineData("poweroff", "poweroff")]
    [InlineData("none", "none")]
    public void Watchdog_action_adds_an_i6300esb_watchdog(string value, string action)
    {
        Samples.BuildDocument(WithFlavorSpecs(("hw:watchdog_action", value))).One($"/domain/devices/watchdog[@model='i6300esb' and @action='{action}']");
        Samples.BuildDocument(WithImageProperties(("hw_watchdog_action", value))).One($"/domain/devices/watchdog[@action='{action}']");
    }

    [Fact]
    public void Watchdog_disabled_or_unset_has_no_device_and_the_flavor_wins_over_the_image()
    {
        Samples.BuildDocument(WithFlavorSpecs(("hw:watchdog_action", "disabled"))).None("/domain/devices/watchdog");
        Samples.BuildDocument(Samples.Typical(Uuid)).None("/domain/devices/watchdog");
        var both = Samples.Typical(Uuid) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:watchdog_action"] = "pause" }),
            Image = Samples.Image(new Dictionary<string, string> { ["hw_watchdog_action"] = "reset" }),
        };
        Samples.BuildDocument(both).One("/domain/devices/watchdog[@action='pause']");
    }

    [Fact]
    public void Boot_menu_from_flavor_or_image_enables_the_bios_menu()
    {
        Samples.BuildDocument(WithFlavorSpecs(("hw:boot_menu", "yes"))).One("/domain/os/bootmenu[@enable='yes']");
        Samples.BuildDocument(WithImageProperties(("hw_boot_menu", "true"))).One("/domain/os/bootmenu[@enable='yes']");
        Samples.BuildDocument(Samples.Typical(Uuid)).None("/domain/os/bootmenu");
        var flavorSaysNo = Samples.Typical(Uuid) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:boot_menu"] = "false" }),
            Image = Samples.Image(new Dictionary<string, string> { ["hw_boot_menu"] = "true" }),
        };
        Samples.BuildDocument(flavorSaysNo).None("/domain/os/bootmenu");
    }

    [Theory]
    [InlineData("true", "on")]
    [InlineData("false", "off")]
    public void Pmu_sets_the_pmu_feature(string value, string state)
    {
        Samples.BuildDocument(WithFlavorSpecs(("hw:pmu", value))).One($"/domain/features/pmu[@state='{state}']");
        Samples.BuildDocument(WithImageProperties(("hw_pmu", value))).One($"/domain/features/pmu[@state='{state}']");
    }

    [Fact]
    public void Cpu_quotas_go_into_cputune()
    {
        var doc = Samples.BuildDocument(WithFlavorSpecs(("quota:cpu_shares", "512"), ("quota:cpu_period", "20000"), ("quota:cpu_quota", "10000")));
        Assert.Equal("512", doc.Value("/domain/cputune/shares"));
        Assert.Equal("20000", doc.Value("/domain/cputune/period"));
        Assert.Equal("10000", doc.Value("/domain/cputune/quota"));
    }

    [Theory]
    [InlineData("quota:disk_read_bytes_sec", "read_bytes_sec")]
    [InlineData("quota:disk_write_bytes_sec", "write_bytes_sec")]
    [InlineData("quota:disk_total_bytes_sec", "total_bytes_sec")]
    [InlineData("quota:disk_read_iops_sec", "read_iops_sec")]
    [InlineData("quota:disk_write_iops_sec", "write_iops_sec")]
    [InlineData("quota:disk_total_iops_sec", "total_iops_sec")]
    public void Disk_quotas_become_iotune_on_local_disks(string key, string element) =>
        Assert.Equal("12345", Samples.BuildDocument(WithFlavorSpecs((key, "12345"))).Value($"/domain/devices/disk[target/@dev='vda']/iotune/{element}"));

    [Theory]
    [InlineData("inbound")]
    [InlineData("outbound")]
    public void Vif_quotas_become_bandwidth_on_every_port(string direction)
    {
        var doc = Samples.BuildDocument(WithFlavorSpecs(($"quota:vif_{direction}_average", "100"), ($"quota:vif_{direction}_peak", "200"), ($"quota:vif_{direction}_burst", "300")));
        doc.One($"/domain/devices/interface/bandwidth/{direction}[@average='100' and @peak='200' and @burst='300']");
    }

    [Fact]
    public void A_port_bandwidth_overrides_the_flavor_quota()
    {
        var spec = WithFlavorSpecs(("quota:vif_inbound_average", "100")) with
        {
            Ports = [Samples.BridgePort() with { Bandwidth = new Bandwidth(null, new BandwidthLimit(77)) }],
        };
        var doc = Samples.BuildDocument(spec);
        doc.One("/domain/devices/interface/bandwidth/outbound[@average='77']");
        doc.None("/domain/devices/interface/bandwidth/inbound");
    }

    [Theory]
    [InlineData("virtio", "vda", "virtio")]
    [InlineData("scsi", "sda", "scsi")]
    [InlineData("ide", "hda", "ide")]
    [InlineData("sata", "sda", "sata")]
    [InlineData("usb", "sda", "usb")]
    public void Hw_disk_bus_sets_bus_and_target_name(string bus, string dev, string expectedBus) =>
        Samples.BuildDocument(WithImageProperties(("hw_disk_bus", bus))).One($"/domain/devices/disk/target[@dev='{dev}' and @bus='{expectedBus}']");

    [Theory]
    [InlineData(null, "virtio-scsi")]
    [InlineData("virtio-scsi", "virtio-scsi")]
    [InlineData("lsilogic", "lsilogic")]
    public void Scsi_disks_get_a_controller_of_hw_scsi_model(string? model, string expected)
    {
        var props = new Dictionary<string, string> { ["hw_disk_bus"] = "scsi" };
        if (model is not null)
        {
            props["hw_scsi_model"] = model;
        }

        Samples.BuildDocument(Samples.Typical(Uuid) with { Image = Samples.Image(props) }).One($"/domain/devices/controller[@type='scsi' and @model='{expected}']");
        Samples.BuildDocument(Samples.Typical(Uuid)).None("/domain/devices/controller[@type='scsi']");
    }

    [Theory]
    [InlineData(null, "pc", "ide", "hda")]
    [InlineData(null, "q35", "sata", "sda")]
    [InlineData("scsi", "pc", "scsi", "sda")]
    [InlineData("usb", "pc", "usb", "sda")]
    public void Hw_cdrom_bus_places_the_iso_config_drive(string? cdromBus, string machine, string bus, string dev)
    {
        var props = new Dictionary<string, string> { ["hw_machine_type"] = machine };
        if (cdromBus is not null)
        {
            props["hw_cdrom_bus"] = cdromBus;
        }

        var spec = Samples.Typical(Uuid) with
        {
            Image = Samples.Image(props),
            BlockDevices = [Samples.Root(Uuid), BlockDevice.ConfigDrive($"/var/lib/compute-agent/instances/{Uuid}/disk.config", ConfigDriveFormat.Iso9660)],
        };
        var doc = Samples.BuildDocument(spec);
        doc.One($"/domain/devices/disk[@device='cdrom']/target[@dev='{dev}' and @bus='{bus}']");
        doc.One("/domain/devices/disk[@device='cdrom']/readonly");
    }

    [Fact]
    public void A_vfat_config_drive_is_a_disk_on_the_disk_bus_after_the_root()
    {
        var spec = Samples.Typical(Uuid) with
        {
            BlockDevices = [BlockDevice.ConfigDrive($"/var/lib/compute-agent/instances/{Uuid}/disk.config", ConfigDriveFormat.Vfat), Samples.Root(Uuid)],
        };
        var doc = Samples.BuildDocument(spec);
        doc.One($"/domain/devices/disk[@device='disk' and source/@file='/var/lib/compute-agent/instances/{Uuid}/disk.config']/target[@dev='vdb']");
        doc.One($"/domain/devices/disk[source/@file='/var/lib/compute-agent/instances/{Uuid}/disk']/target[@dev='vda']");
    }

    [Fact]
    public void An_iso_image_boots_its_root_as_a_cdrom()
    {
        var spec = Samples.Typical(Uuid) with { Image = Samples.Image(diskFormat: "iso") };
        var doc = Samples.BuildDocument(spec);
        doc.One("/domain/devices/disk[@device='cdrom']/target[@dev='hda' and @bus='ide']");
        Assert.Equal(["cdrom", "hd"], doc.All("/domain/os/boot").Select(b => b.Attribute("dev")!.Value));
    }

    [Theory]
    [InlineData("virtio")]
    [InlineData("e1000")]
    [InlineData("e1000e")]
    [InlineData("rtl8139")]
    [InlineData("ne2k_pci")]
    [InlineData("pcnet")]
    public void Hw_vif_model_sets_every_port_model(string model) =>
        Samples.BuildDocument(WithImageProperties(("hw_vif_model", model))).One($"/domain/devices/interface/model[@type='{model}']");

    [Fact]
    public void A_port_model_overrides_the_image()
    {
        var spec = WithImageProperties(("hw_vif_model", "e1000")) with { Ports = [Samples.BridgePort() with { Model = VifModel.Rtl8139 }] };
        Samples.BuildDocument(spec).One("/domain/devices/interface/model[@type='rtl8139']");
    }

    [Theory]
    [InlineData("q35")]
    [InlineData("pc-i440fx-7.2")]
    [InlineData("pc-q35-7.2")]
    public void Hw_machine_type_sets_the_machine(string machine) =>
        Samples.BuildDocument(WithImageProperties(("hw_machine_type", machine))).One($"/domain/os/type[@machine='{machine}']");

    [Fact]
    public void The_host_default_machine_type_applies_without_hw_machine_type() =>
        Samples.BuildDocument(Samples.Typical(Uuid), Samples.Host with { DefaultMachineType = "q35" }).One("/domain/os/type[@machine='q35']");

    [Fact]
    public void Hw_firmware_type_uefi_loads_ovmf_with_an_nvram_template()
    {
        var doc = Samples.BuildDocument(WithImageProperties(("hw_firmware_type", "uefi")));
        Assert.Equal("/usr/share/OVMF/OVMF_CODE_4M.fd", doc.Value("/domain/os/loader[@readonly='yes' and @type='pflash']"));
        doc.One("/domain/os/nvram[@template='/usr/share/OVMF/OVMF_VARS_4M.fd']");
        Samples.BuildDocument(WithImageProperties(("hw_firmware_type", "bios"))).None("/domain/os/loader");
    }

    [Theory]
    [InlineData("vga")]
    [InlineData("cirrus")]
    [InlineData("virtio")]
    [InlineData("qxl")]
    [InlineData("none")]
    public void Hw_video_model_sets_the_video_model(string model) =>
        Samples.BuildDocument(WithImageProperties(("hw_video_model", model))).One($"/domain/devices/video/model[@type='{model}']");

    [Fact]
    public void Hw_video_ram_within_the_flavor_maximum_sets_vram()
    {
        var spec = Samples.Typical(Uuid) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw_video:ram_max_mb"] = "64" }),
            Image = Samples.Image(new Dictionary<string, string> { ["hw_video_model"] = "qxl", ["hw_video_ram"] = "32" }),
        };
        Samples.BuildDocument(spec).One("/domain/devices/video/model[@type='qxl' and @vram='32768']");
    }

    [Fact]
    public void Hw_qemu_guest_agent_adds_the_agent_channel()
    {
        Samples.BuildDocument(WithImageProperties(("hw_qemu_guest_agent", "yes")))
            .One("/domain/devices/channel[@type='unix']/target[@type='virtio' and @name='org.qemu.guest_agent.0']");
        Samples.BuildDocument(WithImageProperties(("hw_qemu_guest_agent", "no"))).None("/domain/devices/channel");
    }

    [Fact]
    public void Every_guest_gets_a_virtio_rng_from_urandom_as_with_nova_without_the_image_asking()
    {
        // Nova's libvirt driver adds the RNG for every qemu/kvm guest; hw_rng_model is not needed.
        var doc = Samples.BuildDocument(Samples.Typical(Uuid));
        Assert.Equal("/dev/urandom", doc.Value("/domain/devices/rng[@model='virtio']/backend[@model='random']"));
        doc.None("/domain/devices/rng/rate");
        Samples.BuildDocument(WithImageProperties(("hw_rng_model", "virtio"))).One("/domain/devices/rng[@model='virtio']");
    }

    [Fact]
    public void The_flavor_rate_limits_the_rng()
    {
        var doc = Samples.BuildDocument(WithFlavorSpecs(("hw_rng:rate_bytes", "1024"), ("hw_rng:rate_period", "2000")));
        doc.One("/domain/devices/rng[@model='virtio']/rate[@bytes='1024' and @period='2000']");
        Assert.Equal("/dev/urandom", doc.Value("/domain/devices/rng/backend[@model='random']"));
    }

    [Fact]
    public void Every_guest_has_the_vmcoreinfo_feature_as_with_nova()
    {
        Samples.BuildDocument(Samples.Typical(Uuid)).One("/domain/features/vmcoreinfo");
        Samples.BuildDocument(WithImageProperties(("os_type", "windows"))).One("/domain/features/vmcoreinfo");
    }

    [Fact]
    public void A_flavor_that_disallows_rng_gets_none_even_when_the_image_asks()
    {
        var spec = Samples.Typical(Uuid) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw_rng:allowed"] = "false" }),
            Image = Samples.Image(new Dictionary<string, string> { ["hw_rng_model"] = "virtio" }),
        };
        Samples.BuildDocument(spec).None("/domain/devices/rng");
        Samples.BuildDocument(WithFlavorSpecs(("hw_rng:allowed", "false"))).None("/domain/devices/rng");
    }

    [Fact]
    public void Pointer_model_usbtablet_adds_a_usb_tablet_and_ps2mouse_does_not()
    {
        Samples.BuildDocument(WithImageProperties(("hw_pointer_model", "usbtablet"))).One("/domain/devices/input[@type='tablet' and @bus='usb']");
        Samples.BuildDocument(WithFlavorSpecs(("hw:pointer_model", "ps2mouse"))).None("/domain/devices/input");
    }

    [Fact]
    public void Serial_port_count_adds_ports_and_only_the_first_is_logged()
    {
        var doc = Samples.BuildDocument(WithImageProperties(("hw_serial_port_count", "3")));
        Assert.Equal(3, doc.All("/domain/devices/serial[@type='pty']").Count);
        doc.One("/domain/devices/serial/target[@port='2']");
        Assert.Single(doc.All("/domain/devices/serial/log"));
        Assert.Equal(2, Samples.BuildDocument(WithFlavorSpecs(("hw:serial_port_count", "2"))).All("/domain/devices/serial").Count);
    }

    [Fact]
    public void Os_type_windows_keeps_local_time_and_hyperv_enlightenments()
    {
        var doc = Samples.BuildDocument(WithImageProperties(("os_type", "windows")));
        doc.One("/domain/clock[@offset='localtime']/timer[@name='hypervclock' and @present='yes']");
        doc.One("/domain/features/hyperv/relaxed[@state='on']");
        doc.One("/domain/features/hyperv/spinlocks[@retries='8191']");
        Samples.BuildDocument(WithImageProperties(("os_type", "linux"))).None("/domain/features/hyperv");
    }

    [Fact]
    public void Kernel_id_boots_the_cached_kernel_and_ramdisk_with_the_command_line()
    {
        var spec = WithImageProperties(("kernel_id", "k-1"), ("ramdisk_id", "r-1"), ("os_command_line", "console=ttyS0 quiet \"x<y&z\"")) with
        {
            KernelBoot = new KernelBoot("/var/lib/compute-agent/_base/k-1", "/var/lib/compute-agent/_base/r-1"),
        };
        var doc = Samples.BuildDocument(spec);
        Assert.Equal("/var/lib/compute-agent/_base/k-1", doc.Value("/domain/os/kernel"));
        Assert.Equal("/var/lib/compute-agent/_base/r-1", doc.Value("/domain/os/initrd"));
        Assert.Equal("console=ttyS0 quiet \"x<y&z\"", doc.Value("/domain/os/cmdline"));
    }

    [Fact]
    public void Kernel_boot_without_os_command_line_takes_novas_default()
    {
        var spec = WithImageProperties(("kernel_id", "k-1")) with { KernelBoot = new KernelBoot("/var/lib/compute-agent/_base/k-1", null) };
        var doc = Samples.BuildDocument(spec);
        Assert.Equal("root=/dev/vda console=tty0 console=ttyS0", doc.Value("/domain/os/cmdline"));
        doc.None("/domain/os/initrd");
    }

    [Fact]
    public void Os_distro_and_unknown_properties_change_nothing()
    {
        var plain = Samples.BuildDocument(Samples.Typical(Uuid)).ToString();
        var withDistro = Samples.BuildDocument(WithImageProperties(("os_distro", "ubuntu"), ("my_own_tag", "x"))).ToString();
        Assert.Equal(plain, withDistro);
    }

    [Fact]
    public void A_bridge_port_plugs_a_named_tap_into_the_linux_bridge_with_its_mtu()
    {
        var doc = Samples.BuildDocument(Samples.Typical(Uuid));
        var nic = "/domain/devices/interface[@type='bridge']";
        doc.One(nic + "/mac[@address='fa:16:3e:00:00:00']");
        doc.One(nic + "/source[@bridge='br-test']");
        doc.One(nic + "/target[@dev='tap3f0c1d20-aa']");
        doc.One(nic + "/mtu[@size='1450']");
        doc.None(nic + "/virtualport");
    }

    [Fact]
    public void Ethernet_ovs_and_vhostuser_ports_produce_their_interfaces()
    {
        var doc = Samples.BuildDocument(Samples.Maximal(Uuid));
        doc.One("/domain/devices/interface[@type='ethernet']/target[@dev='tap-eth2']");
        doc.None("/domain/devices/interface[@type='ethernet']/source");
        doc.One("/domain/devices/interface[@type='bridge' and source/@bridge='br-int']/virtualport[@type='openvswitch']/parameters[@interfaceid='3f0c1d23-aaaa-4bbb-8ccc-000000000003']");
        doc.One("/domain/devices/interface[@type='vhostuser']/source[@type='unix' and @path='/var/run/openvswitch/vhu3f0c1d2e-aa' and @mode='server']");
        doc.One("/domain/devices/interface[@type='vhostuser']/model[@type='virtio']");
        Assert.Equal(4, doc.All("/domain/devices/interface").Count);
    }

    [Fact]
    public void Block_devices_of_every_kind_become_disks_in_novas_order()
    {
        var doc = Samples.BuildDocument(Samples.Maximal(Uuid));
        var dir = $"/var/lib/compute-agent/instances/{Uuid}";
        doc.One($"/domain/devices/disk[source/@file='{dir}/disk']/target[@dev='vda']");
        doc.One($"/domain/devices/disk[source/@file='{dir}/disk']/driver[@discard='unmap']");
        doc.One($"/domain/devices/disk[source/@file='{dir}/disk']/boot[@order='1']");
        doc.One($"/domain/devices/disk[source/@file='{dir}/disk.eph0']/target[@dev='vdb']");
        doc.One($"/domain/devices/disk[source/@file='{dir}/disk.swap']/target[@dev='vdc']");
        doc.One("/domain/devices/disk[@type='file' and source/@file='/var/lib/volumes/vol-file']/target[@dev='sda' and @bus='scsi']");
        doc.One("/domain/devices/disk[@type='file' and source/@file='/var/lib/volumes/vol-file']/driver[@type='raw']");
        doc.One("/domain/devices/disk[serial='11111111-2222-4333-8444-555555555551']");
        doc.One("/domain/devices/disk[@type='block' and source/@dev]/driver[@cache='directsync']");
        Assert.Equal("1000000", doc.Value("/domain/devices/disk[@type='block']/iotune/total_bytes_sec"));
        doc.One("/domain/devices/disk[@type='block']/target[@dev='vdd']");
        var rbd = "/domain/devices/disk[@type='network']";
        doc.One(rbd + "/source[@protocol='rbd' and @name='volumes/volume-3']/host[@name='192.0.2.22' and @port='6789']");
        doc.One(rbd + "/source/auth[@username='cinder']/secret[@type='ceph' and @uuid='457eb676-33da-42ec-9a8c-9293d545c337']");
        doc.One(rbd + "/boot[@order='2']");
        doc.None(rbd + "/iotune");
        doc.One($"/domain/devices/disk[@device='cdrom' and source/@file='{dir}/disk.config']/target[@bus='sata']");
        doc.None("/domain/os/boot");
    }

    [Fact]
    public void Flavor_disk_quotas_apply_to_local_disks_not_volumes()
    {
        var doc = Samples.BuildDocument(Samples.Maximal(Uuid));
        Assert.Equal("10485760", doc.Value("/domain/devices/disk[target/@dev='vda']/iotune/read_bytes_sec"));
        doc.None("/domain/devices/disk[source/@file='/var/lib/volumes/vol-file']/iotune");
    }

    [Fact]
    public void Cinder_connection_info_of_each_driver_becomes_its_disk()
    {
        static BlockDevice Volume(string json) => VolumeConnection.ToBlockDevice(System.Text.Json.JsonDocument.Parse(json).RootElement, "vol-1", "/var/lib/compute-agent/mnt");

        var iscsi = Volume("""{"driver_volume_type":"iscsi","data":{"target_iqn":"iqn.x","target_portal":"192.0.2.1:3260","target_lun":1,"device_path":"/dev/disk/by-path/ip-192.0.2.1:3260-iscsi-iqn.x-lun-1","access_mode":"ro","qos_specs":{"total_iops_sec":"300"}}}""");
        Assert.Equal(new BlockDiskSource("/dev/disk/by-path/ip-192.0.2.1:3260-iscsi-iqn.x-lun-1"), iscsi.Source);
        Assert.True(iscsi.ReadOnly);
        Assert.Equal(300, iscsi.IoTune!.TotalIopsSec);

        var rbd = Volume("""{"driver_volume_type":"rbd","data":{"name":"volumes/volume-1","hosts":["192.0.2.5","192.0.2.6"],"ports":["6789","6789"],"auth_enabled":true,"auth_username":"cinder","secret_type":"ceph","secret_uuid":"457eb676-33da-42ec-9a8c-9293d545c337","discard":true}}""");
        var rbdSource = Assert.IsType<RbdDiskSource>(rbd.Source);
        Assert.Equal(("volumes", "volume-1", "cinder"), (rbdSource.Pool, rbdSource.Image, rbdSource.AuthUsername));
        Assert.Equal(2, rbdSource.Monitors.Count);
        Assert.Equal(DiscardMode.Unmap, rbd.Discard);

        var nfs = Volume("""{"driver_volume_type":"nfs","data":{"export":"192.0.2.9:/srv/cinder","name":"volume-1","format":"qcow2"}}""");
        var nfsSource = Assert.IsType<FileDiskSource>(nfs.Source);
        Assert.StartsWith("/var/lib/compute-agent/mnt/", nfsSource.Path, StringComparison.Ordinal);
        Assert.EndsWith("/volume-1", nfsSource.Path, StringComparison.Ordinal);
        Assert.Equal(DiskFormat.Qcow2, nfsSource.Format);

        var local = Volume("""{"driver_volume_type":"local","data":{"device_path":"/var/lib/volumes/v1"}}""");
        Assert.Equal(new FileDiskSource("/var/lib/volumes/v1", DiskFormat.Raw), local.Source);
        Assert.Equal("vol-1", local.Serial);

        var spec = Samples.Typical(Uuid) with { BlockDevices = [Samples.Root(Uuid), iscsi, rbd, nfs] };
        var doc = Samples.BuildDocument(spec);
        doc.One("/domain/devices/disk[@type='block']/readonly");
        Assert.Equal("300", doc.Value("/domain/devices/disk[@type='block']/iotune/total_iops_sec"));
        doc.One("/domain/devices/disk[@type='network']/driver[@discard='unmap']");
        doc.One("/domain/devices/disk[@type='file' and contains(source/@file, '/volume-1')]/driver[@type='qcow2']");
    }
}
