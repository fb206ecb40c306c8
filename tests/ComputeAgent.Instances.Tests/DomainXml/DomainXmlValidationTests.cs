using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Model;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>Each invalid input is refused with one typed exception naming the field, the value and what is allowed.</summary>
public sealed class DomainXmlValidationTests
{
    private static readonly Guid Uuid = Guid.Parse("0c1d2e3f-1111-4222-8333-444455556666");

    private static InstanceSpec Flavor(Dictionary<string, string> specs, int vcpus = 2, int ram = 2048) =>
        Samples.Typical(Uuid) with { Flavor = Samples.Flavor(specs, vcpus, ram) };

    private static InstanceSpec Image(Dictionary<string, string> properties) => Samples.Typical(Uuid) with { Image = Samples.Image(properties) };

    private static InstanceSpec Both(Dictionary<string, string> specs, Dictionary<string, string> properties) =>
        Samples.Typical(Uuid) with { Flavor = Samples.Flavor(specs), Image = Samples.Image(properties) };

    private static InstanceSpec Ports(params Port[] ports) => Samples.Typical(Uuid) with { Ports = ports };

    private static InstanceSpec Disks(params BlockDevice[] devices) => Samples.Typical(Uuid) with { BlockDevices = devices };

    private static readonly Dictionary<string, (Func<InstanceSpec> Spec, string Field, string? Value)> Cases = new(StringComparer.Ordinal)
    {
        ["zero vcpus"] = (() => Samples.Typical(Uuid) with { Flavor = new Flavor("f", 0, 512, 1) }, "flavor.vcpus", "0"),
        ["tiny ram"] = (() => Samples.Typical(Uuid) with { Flavor = new Flavor("f", 1, 1, 1) }, "flavor.ram", "1"),
        ["negative swap"] = (() => Samples.Typical(Uuid) with { Flavor = new Flavor("f", 1, 512, 1, SwapGiB: -1) }, "flavor.swap_gb", "-1"),
        ["unknown hw: key"] = (() => Flavor(new() { ["hw:cpu_polcy"] = "dedicated" }), "flavor.extra_specs[hw:cpu_polcy]", "dedicated"),
        ["unknown quota: key"] = (() => Flavor(new() { ["quota:disk_read_bytes"] = "1" }), "flavor.extra_specs[quota:disk_read_bytes]", "1"),
        ["cpu policy"] = (() => Flavor(new() { ["hw:cpu_policy"] = "mixed-up" }), "flavor.extra_specs[hw:cpu_policy]", "mixed-up"),
        ["sockets not a number"] = (() => Flavor(new() { ["hw:cpu_sockets"] = "two" }), "flavor.extra_specs[hw:cpu_sockets]", "two"),
        ["page size"] = (() => Flavor(new() { ["hw:mem_page_size"] = "huge" }), "flavor.extra_specs[hw:mem_page_size]", "huge"),
        ["page size the host lacks"] = (() => Flavor(new() { ["hw:mem_page_size"] = "16MB" }), "flavor.extra_specs[hw:mem_page_size]", "16384KiB"),
        ["page size not dividing ram"] = (() => Flavor(new() { ["hw:mem_page_size"] = "1GB" }, ram: 1536), "flavor.extra_specs[hw:mem_page_size]", "1048576KiB"),
        ["watchdog"] = (() => Flavor(new() { ["hw:watchdog_action"] = "explode" }), "flavor.extra_specs[hw:watchdog_action]", "explode"),
        ["boot menu"] = (() => Flavor(new() { ["hw:boot_menu"] = "maybe" }), "flavor.extra_specs[hw:boot_menu]", "maybe"),
        ["cpu quota below 1000"] = (() => Flavor(new() { ["quota:cpu_quota"] = "5" }), "flavor.extra_specs[quota:cpu_quota]", "5"),
        ["cpu period"] = (() => Flavor(new() { ["quota:cpu_period"] = "10" }), "flavor.extra_specs[quota:cpu_period]", "10"),
        ["total and read bytes"] = (() => Flavor(new() { ["quota:disk_total_bytes_sec"] = "1", ["quota:disk_read_bytes_sec"] = "1" }), "flavor.extra_specs[quota:disk_total_bytes_sec]", "1"),
        ["vif peak without average"] = (() => Flavor(new() { ["quota:vif_inbound_peak"] = "10" }), "flavor.extra_specs[quota:vif_inbound_average]", null),
        ["numa not dividing vcpus"] = (() => Flavor(new() { ["hw:numa_nodes"] = "2" }, vcpus: 3), "flavor.extra_specs[hw:numa_nodes]", "2"),
        ["numa more than vcpus"] = (() => Flavor(new() { ["hw:numa_nodes"] = "4" }), "flavor.extra_specs[hw:numa_nodes]", "4"),
        ["impossible topology"] = (() => Flavor(new() { ["hw:cpu_max_sockets"] = "1", ["hw:cpu_max_cores"] = "1", ["hw:cpu_max_threads"] = "2" }, vcpus: 3), "flavor.vcpus", "3"),
        ["preferred above max"] = (() => Flavor(new() { ["hw:cpu_sockets"] = "4", ["hw:cpu_max_sockets"] = "2" }, vcpus: 4), "flavor.extra_specs[hw:cpu_sockets]", "4"),
        ["dedicated with too few pins"] = (() => Samples.Typical(Uuid) with { Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:cpu_policy"] = "dedicated" }), PinnedCpus = [2] }, "pinned_cpus", "2"),
        ["dedicated pinned outside the set"] = (() => Samples.Typical(Uuid) with { Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:cpu_policy"] = "dedicated" }), PinnedCpus = [0, 1] }, "pinned_cpus", "0,1"),
        ["pins on a shared instance"] = (() => Samples.Typical(Uuid) with { PinnedCpus = [2, 3] }, "pinned_cpus", "2,3"),
        ["disk bus"] = (() => Image(new() { ["hw_disk_bus"] = "floppy" }), "image.properties[hw_disk_bus]", "floppy"),
        ["virtio cdrom"] = (() => Image(new() { ["hw_cdrom_bus"] = "virtio" }), "image.properties[hw_cdrom_bus]", "virtio"),
        ["scsi model"] = (() => Image(new() { ["hw_scsi_model"] = "buslogic" }), "image.properties[hw_scsi_model]", "buslogic"),
        ["vif model"] = (() => Image(new() { ["hw_vif_model"] = "vmxnet3" }), "image.properties[hw_vif_model]", "vmxnet3"),
        ["machine type with a shell"] = (() => Image(new() { ["hw_machine_type"] = "pc;reboot" }), "image.properties[hw_machine_type]", "pc;reboot"),
        ["firmware"] = (() => Image(new() { ["hw_firmware_type"] = "coreboot" }), "image.properties[hw_firmware_type]", "coreboot"),
        ["video"] = (() => Image(new() { ["hw_video_model"] = "voodoo" }), "image.properties[hw_video_model]", "voodoo"),
        ["video ram above the flavor maximum"] = (() => Image(new() { ["hw_video_model"] = "vga", ["hw_video_ram"] = "16" }), "image.properties[hw_video_ram]", "16"),
        ["unknown hw_video: key"] = (() => Flavor(new() { ["hw_video:ram"] = "16" }), "flavor.extra_specs[hw_video:ram]", "16"),
        ["agent"] = (() => Image(new() { ["hw_qemu_guest_agent"] = "please" }), "image.properties[hw_qemu_guest_agent]", "please"),
        ["rng"] = (() => Image(new() { ["hw_rng_model"] = "egd" }), "image.properties[hw_rng_model]", "egd"),
        ["pointer"] = (() => Image(new() { ["hw_pointer_model"] = "lightpen" }), "image.properties[hw_pointer_model]", "lightpen"),
        ["serial ports"] = (() => Image(new() { ["hw_serial_port_count"] = "99" }), "image.properties[hw_serial_port_count]", "99"),
        ["os type"] = (() => Image(new() { ["os_type"] = "beos" }), "image.properties[os_type]", "beos"),
        ["config drive requirement"] = (() => Image(new() { ["img_config_drive"] = "sometimes" }), "image.properties[img_config_drive]", "sometimes"),
        ["disk format"] = (() => Samples.Typical(Uuid) with { Image = Samples.Image(diskFormat: "exe") }, "image.disk_format", "exe"),
        ["container format"] = (() => Samples.Typical(Uuid) with { Image = new ImageMeta("i", "qcow2", "zip") }, "image.container_format", "zip"),
        ["min disk above root"] = (() => Samples.Typical(Uuid) with { Image = new ImageMeta("i", MinDiskGiB: 21) }, "image.min_disk", "21"),
        ["min ram above ram"] = (() => Samples.Typical(Uuid) with { Image = new ImageMeta("i", MinRamMiB: 4096) }, "image.min_ram", "4096"),
        ["image dedicated on a shared flavor"] = (() => Both(new() { ["hw:cpu_policy"] = "shared" }, new() { ["hw_cpu_policy"] = "dedicated" }), "image.properties[hw_cpu_policy]", "dedicated"),
        ["image page size without flavor"] = (() => Image(new() { ["hw_mem_page_size"] = "large" }), "image.properties[hw_mem_page_size]", "large"),
        ["image page size on a small flavor"] = (() => Both(new() { ["hw:mem_page_size"] = "small" }, new() { ["hw_mem_page_size"] = "large" }), "image.properties[hw_mem_page_size]", "large"),
        ["image numa differs"] = (() => Both(new() { ["hw:numa_nodes"] = "1" }, new() { ["hw_numa_nodes"] = "2" }), "image.properties[hw_numa_nodes]", "2"),
        ["image serial above flavor"] = (() => Both(new() { ["hw:serial_port_count"] = "1" }, new() { ["hw_serial_port_count"] = "2" }), "image.properties[hw_serial_port_count]", "2"),
        ["pmu conflict"] = (() => Both(new() { ["hw:pmu"] = "true" }, new() { ["hw_pmu"] = "false" }), "image.properties[hw_pmu]", "False"),
        ["pointer conflict"] = (() => Both(new() { ["hw:pointer_model"] = "usbtablet" }, new() { ["hw_pointer_model"] = "ps2mouse" }), "image.properties[hw_pointer_model]", "Ps2Mouse"),
        ["image max above flavor max"] = (() => Both(new() { ["hw:cpu_max_sockets"] = "2" }, new() { ["hw_cpu_max_sockets"] = "4" }), "image.properties[hw_cpu_max_sockets]", "4"),
        ["image preferred above image max"] = (() => Image(new() { ["hw_cpu_sockets"] = "2", ["hw_cpu_max_sockets"] = "1" }), "image.properties[hw_cpu_sockets]", "2"),
        ["ide on q35"] = (() => Image(new() { ["hw_machine_type"] = "q35", ["hw_disk_bus"] = "ide" }), "image.properties[hw_disk_bus]", "ide"),
        ["mandatory config drive missing"] = (() => Image(new() { ["img_config_drive"] = "mandatory" }), "block_devices", "(no config drive)"),
        ["kernel_id without the cached kernel"] = (() => Image(new() { ["kernel_id"] = "k" }), "kernel_boot", null),
        ["ramdisk_id without the cached ramdisk"] = (() => Image(new() { ["kernel_id"] = "k", ["ramdisk_id"] = "r" }) with { KernelBoot = new KernelBoot("/k", null) }, "kernel_boot.ramdisk_path", null),
        ["mac"] = (() => Ports(Samples.BridgePort() with { MacAddress = "fa:16:3e:zz:00:00" }), "ports[0].mac", "fa:16:3e:zz:00:00"),
        ["multicast mac"] = (() => Ports(Samples.BridgePort() with { MacAddress = "01:00:5e:00:00:01" }), "ports[0].mac", "01:00:5e:00:00:01"),
        ["duplicate mac"] = (() => Ports(Samples.BridgePort(1), Samples.BridgePort(2) with { MacAddress = "fa:16:3e:00:00:01" }), "ports[1].mac", "fa:16:3e:00:00:01"),
        ["tap too long"] = (() => Ports(Samples.BridgePort() with { DeviceName = "tap0123456789abcdef" }), "ports[0].devname", "tap0123456789abcdef"),
        ["tap with a slash"] = (() => Ports(Samples.BridgePort() with { DeviceName = "tap/../x" }), "ports[0].devname", "tap/../x"),
        ["bridge missing"] = (() => Ports(Samples.BridgePort() with { BridgeName = null }), "ports[0].bridge", null),
        ["ovs port id not a uuid"] = (() => Ports(new Port("port-1", "fa:16:3e:00:00:09", VifType.Ovs) { BridgeName = "br-int" }), "ports[0].id", "port-1"),
        ["vhostuser relative socket"] = (() => Ports(new Port("p", "fa:16:3e:00:00:09", VifType.VhostUser) { VhostUserSocketPath = "run/vhu" }), "ports[0].vhostuser_socket", "run/vhu"),
        ["mtu"] = (() => Ports(Samples.BridgePort() with { Mtu = 10 }), "ports[0].mtu", "10"),
        ["two roots"] = (() => Disks(Samples.Root(Uuid), Samples.Root(Uuid)), "block_devices", "2 × Root"),
        ["relative path"] = (() => Disks(new BlockDevice(BlockDeviceRole.Root, new FileDiskSource("disk.qcow2", DiskFormat.Qcow2))), "block_devices[0].path", "disk.qcow2"),
        ["path with .."] = (() => Disks(new BlockDevice(BlockDeviceRole.Root, new FileDiskSource("/var/lib/compute-agent/instances/../../../etc/shadow", DiskFormat.Raw))), "block_devices[0].path", "/var/lib/compute-agent/instances/../../../etc/shadow"),
        ["swap without flavor swap"] = (() => Disks(Samples.Root(Uuid), new BlockDevice(BlockDeviceRole.Swap, new FileDiskSource("/s", DiskFormat.Raw))), "block_devices", "1 × Swap"),
        ["ephemeral without flavor ephemeral"] = (() => Disks(Samples.Root(Uuid), new BlockDevice(BlockDeviceRole.Ephemeral, new FileDiskSource("/e", DiskFormat.Raw))), "block_devices", "1 × Ephemeral"),
        ["duplicate boot index"] = (() => Disks(Samples.Root(Uuid) with { BootIndex = 0 }, new BlockDevice(BlockDeviceRole.Volume, new FileDiskSource("/v", DiskFormat.Raw)) { BootIndex = 0 }), "block_devices.boot_index", "0,0"),
        ["virtio cdrom device"] = (() => Disks(Samples.Root(Uuid), BlockDevice.ConfigDrive("/c", ConfigDriveFormat.Iso9660) with { Bus = DiskBus.Virtio }), "block_devices[1].disk_bus", "virtio"),
        ["block device outside /dev"] = (() => Disks(Samples.Root(Uuid), new BlockDevice(BlockDeviceRole.Volume, new BlockDiskSource("/etc/passwd"))), "block_devices[1].device_path", "/etc/passwd"),
        ["rbd auth without secret"] = (() => Disks(Samples.Root(Uuid), new BlockDevice(BlockDeviceRole.Volume, new RbdDiskSource("p", "i", [new RbdMonitor("m", 6789)], "cinder", null))), "block_devices[1].secret_uuid", null),
        ["rbd image with a slash"] = (() => Disks(Samples.Root(Uuid), new BlockDevice(BlockDeviceRole.Volume, new RbdDiskSource("p", "../i", [new RbdMonitor("m", 6789)], null, null))), "block_devices[1].name", "../i"),
        ["serial with spaces"] = (() => Disks(Samples.Root(Uuid) with { Serial = "a b" }), "block_devices[0].serial", "a b"),
        ["nil uuid"] = (() => Samples.Typical(Guid.Empty), "uuid", "00000000-0000-0000-0000-000000000000"),
    };

    public static IEnumerable<object[]> Names => Cases.Keys.Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(Names))]
    public void The_invalid_input_is_refused_naming_field_value_and_what_is_allowed(string name)
    {
        var (spec, field, value) = Cases[name];
        var error = Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host).Build(spec()));
        Assert.Equal(field, error.Field);
        Assert.Equal(value, error.Value);
        Assert.False(string.IsNullOrWhiteSpace(error.Allowed));
        Assert.Contains(field, error.Message, StringComparison.Ordinal);
        Assert.Contains(error.Allowed, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dedicated_cpus_on_a_host_without_a_dedicated_set_are_refused()
    {
        var spec = Samples.Typical(Uuid) with { Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:cpu_policy"] = "dedicated" }), PinnedCpus = [2, 3] };
        var error = Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host with { DedicatedCpuSet = [] }).Build(spec));
        Assert.Equal(("flavor.extra_specs[hw:cpu_policy]", "dedicated"), (error.Field, error.Value));
    }

    [Fact]
    public void Scheduler_namespaces_are_ignored()
    {
        var spec = Flavor(new() { ["aggregate_instance_extra_specs:ssd"] = "true", ["trait:HW_CPU_X86_AVX2"] = "required", ["resources:VGPU"] = "1" });
        Samples.BuildDocument(spec).One("/domain");
    }

    [Fact]
    public void Host_settings_are_checked_when_the_builder_is_made()
    {
        var error = Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host with { CpuMode = CpuMode.HostPassthrough }));
        Assert.Equal("host.cpu_mode", error.Field);
        Assert.Equal("host.cpu_model", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host with { CpuMode = CpuMode.Custom })).Field);
        Assert.Equal("host.instances_path", Assert.Throws<InvalidInstanceSpecException>(() => new DomainXmlBuilder(Samples.Host with { InstancesDirectory = "relative" })).Field);
        Assert.Equal(VirtType.Qemu, HostSettings.ParseVirtType("auto", kvmUsable: false));
        Assert.Equal(VirtType.Kvm, HostSettings.ParseVirtType("auto", kvmUsable: true));
        Assert.Equal("host.virt_type", Assert.Throws<InvalidInstanceSpecException>(() => HostSettings.ParseVirtType("xen", true)).Field);
    }

    [Fact]
    public void Invalid_cinder_connection_info_is_refused()
    {
        static InvalidInstanceSpecException Refused(string json) => Assert.Throws<InvalidInstanceSpecException>(
            () => VolumeConnection.ToBlockDevice(System.Text.Json.JsonDocument.Parse(json).RootElement, "vol-1", "/mnt"));

        Assert.Equal("connection_info.driver_volume_type", Refused("""{"driver_volume_type":"fibre_channel","data":{}}""").Field);
        Assert.Equal("connection_info.data.device_path", Refused("""{"driver_volume_type":"iscsi","data":{"target_iqn":"x"}}""").Field);
        Assert.Equal("connection_info.data.name", Refused("""{"driver_volume_type":"rbd","data":{"name":"noslash","hosts":[],"ports":[]}}""").Field);
        Assert.Equal("connection_info.data.ports", Refused("""{"driver_volume_type":"rbd","data":{"name":"p/i","hosts":["a"],"ports":[]}}""").Field);
        Assert.Equal("connection_info.data.format", Refused("""{"driver_volume_type":"nfs","data":{"export":"h:/e","name":"v","format":"vmdk"}}""").Field);
        Assert.Equal("connection_info.data.name", Refused("""{"driver_volume_type":"nfs","data":{"export":"h:/e","name":"../../etc/shadow"}}""").Field);
        Assert.Equal("connection_info.data.qos_specs.total_bytes_sec", Refused("""{"driver_volume_type":"local","data":{"device_path":"/v","qos_specs":{"total_bytes_sec":"1","read_bytes_sec":"1"}}}""").Field);
    }
}
