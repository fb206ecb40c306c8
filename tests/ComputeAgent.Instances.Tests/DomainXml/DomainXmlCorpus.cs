using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>
/// Named inputs that together exercise every element the builder can write; each must validate
/// against libvirt's schema and be accepted by virDomainDefineXML.
/// </summary>
public static class DomainXmlCorpus
{
    private static readonly Dictionary<string, Func<Guid, InstanceSpec>> Cases = new(StringComparer.Ordinal)
    {
        ["typical"] = id => Samples.Typical(id),
        ["maximal"] = id => Samples.Maximal(id),
        ["pinned + numa + 1G pages"] = id => Samples.Typical(id) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:cpu_policy"] = "dedicated", ["hw:numa_nodes"] = "2", ["hw:mem_page_size"] = "1GB" }, vcpus: 2),
            PinnedCpus = [6, 7],
        },
        ["topology + quotas"] = id => Samples.Typical(id) with
        {
            Flavor = Samples.Flavor(
                new Dictionary<string, string>
                {
                    ["hw:cpu_sockets"] = "1",
                    ["hw:cpu_threads"] = "2",
                    ["quota:cpu_shares"] = "100",
                    ["quota:cpu_quota"] = "-1",
                    ["quota:disk_total_bytes_sec"] = "1000000",
                    ["quota:disk_read_iops_sec"] = "10",
                    ["quota:disk_write_iops_sec"] = "20",
                    ["quota:vif_outbound_average"] = "10",
                    ["quota:vif_outbound_burst"] = "20",
                },
                vcpus: 4),
        },
        ["every disk bus"] = id => Samples.Typical(id) with
        {
            Image = Samples.Image(new Dictionary<string, string> { ["hw_disk_bus"] = "ide", ["hw_scsi_model"] = "lsilogic" }),
            BlockDevices =
            [
                Samples.Root(id),
                new(BlockDeviceRole.Volume, new FileDiskSource("/var/lib/volumes/a", DiskFormat.Raw)) { Bus = DiskBus.Scsi, Serial = "vol-a" },
                new(BlockDeviceRole.Volume, new FileDiskSource("/var/lib/volumes/b", DiskFormat.Raw)) { Bus = DiskBus.Sata, Serial = "vol-b" },
                new(BlockDeviceRole.Volume, new FileDiskSource("/var/lib/volumes/c", DiskFormat.Raw)) { Bus = DiskBus.Usb, Serial = "vol-c" },
                new(BlockDeviceRole.Volume, new FileDiskSource("/var/lib/volumes/d", DiskFormat.Raw)) { Bus = DiskBus.Virtio, Serial = "vol-d", ReadOnly = true },
            ],
        },
        ["iso image on q35 sata"] = id => Samples.Typical(id) with
        {
            Image = Samples.Image(new Dictionary<string, string> { ["hw_machine_type"] = "q35", ["hw_video_model"] = "vga", ["hw_vif_model"] = "e1000e" }, diskFormat: "iso"),
        },
        ["direct kernel boot"] = id => Samples.Typical(id) with
        {
            Image = Samples.Image(new Dictionary<string, string> { ["kernel_id"] = "k", ["ramdisk_id"] = "r", ["os_command_line"] = "console=ttyS0 x=\"<&>\"" }),
            KernelBoot = new KernelBoot("/var/cache/k", "/var/cache/r"),
        },
        ["uefi + agent + rng + watchdog"] = id => Samples.Typical(id) with
        {
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw:watchdog_action"] = "poweroff", ["hw_rng:rate_bytes"] = "100", ["hw:pmu"] = "on" }),
            Image = Samples.Image(new Dictionary<string, string>
            {
                ["hw_firmware_type"] = "uefi",
                ["hw_qemu_guest_agent"] = "true",
                ["hw_rng_model"] = "virtio",
                ["hw_video_model"] = "none",
                ["hw_pointer_model"] = "ps2mouse",
                ["hw_boot_menu"] = "yes",
                ["hw_serial_port_count"] = "4",
                ["os_type"] = "linux",
            }),
        },
        ["no ports, kvm, custom cpu, cirrus"] = id => Samples.Typical(id) with
        {
            Ports = [],
            Flavor = Samples.Flavor(new Dictionary<string, string> { ["hw_video:ram_max_mb"] = "16" }),
            Image = Samples.Image(new Dictionary<string, string> { ["hw_video_model"] = "cirrus", ["hw_video_ram"] = "16", ["hw_vif_model"] = "pcnet" }),
        },
        ["cpu mode none"] = id => Samples.Typical(id),
        ["tcg, custom cpu"] = id => Samples.Typical(id),
        ["kvm, host-passthrough"] = id => Samples.Typical(id),
        ["hostile text"] = id => Samples.Typical(id) with
        {
            Name = "</name><devices><disk type='file'/></devices>&amp; \"quoted\" 'single' ]]> <!-- -->",
            Flavor = new Flavor("flavor<&>\"'", 1, 512, 1),
            Image = new ImageMeta("image\"id'<&>", "qcow2", "bare"),
            Owner = new InstanceOwner("project<script>", "user&amp;"),
        },
    };

    public static IEnumerable<object[]> Names => Cases.Keys.Select(k => new object[] { k });

    // The cases built on another host than the sample one (every CpuMode the agent can be set to).
    private static readonly Dictionary<string, HostSettings> Hosts = new(StringComparer.Ordinal)
    {
        ["no ports, kvm, custom cpu, cirrus"] = Samples.Host with { VirtType = VirtType.Kvm, CpuMode = CpuMode.Custom, CpuModel = "qemu64" },
        ["cpu mode none"] = Samples.Host with { CpuMode = CpuMode.None },
        ["tcg, custom cpu"] = Samples.Host with { CpuMode = CpuMode.Custom, CpuModel = "Haswell-noTSX" },
        ["kvm, host-passthrough"] = Samples.Host with { VirtType = VirtType.Kvm, CpuMode = CpuMode.HostPassthrough },
    };

    public static HostSettings HostFor(string name) => Hosts.GetValueOrDefault(name, Samples.Host);

    public static InstanceSpec Spec(string name, Guid uuid) => Cases[name](uuid);
}
