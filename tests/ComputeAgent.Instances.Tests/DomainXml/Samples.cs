using System.Xml.Linq;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>
/// Inputs for the domain XML tests and the benchmark: a typical instance (what most boots look
/// like) and a maximal one (every option the builder knows, at once).
/// </summary>
public static class Samples
{
    public static readonly HostSettings Host = new()
    {
        VirtType = VirtType.Qemu,
        CpuMode = CpuMode.HostModel,
        InstancesDirectory = "/var/lib/compute-agent/instances",
        DedicatedCpuSet = [2, 3, 4, 5, 6, 7],
        HugePageSizesKiB = [2048, 1048576],
    };

    public static readonly DateTimeOffset CreatedAt = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    public static Flavor Flavor(IReadOnlyDictionary<string, string>? extraSpecs = null, int vcpus = 2, int ramMiB = 2048) =>
        new("m1.small", vcpus, ramMiB, RootGiB: 20, ExtraSpecs: extraSpecs);

    public static ImageMeta Image(IReadOnlyDictionary<string, string>? properties = null, string diskFormat = "qcow2") =>
        new("a1b2c3d4-0000-4000-8000-000000000001", diskFormat, "bare", Properties: properties);

    public static BlockDevice Root(Guid uuid) =>
        new(BlockDeviceRole.Root, new FileDiskSource($"/var/lib/compute-agent/instances/{uuid}/disk", DiskFormat.Qcow2));

    public static Port BridgePort(int n = 0) =>
        new($"3f0c1d2{n}-aaaa-4bbb-8ccc-00000000000{n}", $"fa:16:3e:00:00:0{n}", VifType.Bridge) { BridgeName = "br-test", Mtu = 1450 };

    /// <summary>One root overlay, one bridge port, default flavor and image: most boots.</summary>
    public static InstanceSpec Typical(Guid? uuid = null)
    {
        var id = uuid ?? Guid.NewGuid();
        return new InstanceSpec
        {
            Uuid = id,
            Name = "web-1",
            Flavor = Flavor(),
            Image = Image(),
            Owner = new InstanceOwner("6f3e1a2b3c4d4e5f8a9b0c1d2e3f4a5b", "0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5"),
            CreatedAt = CreatedAt,
            Ports = [BridgePort()],
            BlockDevices = [Root(id)],
        };
    }

    /// <summary>Every option at once: pinning, NUMA, huge pages, quotas, four port kinds, every volume kind.</summary>
    public static InstanceSpec Maximal(Guid? uuid = null)
    {
        var id = uuid ?? Guid.NewGuid();
        var dir = $"/var/lib/compute-agent/instances/{id}";
        return new InstanceSpec
        {
            Uuid = id,
            Name = "db-primary <&\"'> ünïcode",
            Flavor = new Flavor("m1.xlarge.pinned", 4, 4096, RootGiB: 40, EphemeralGiB: 10, SwapGiB: 1, ExtraSpecs: new Dictionary<string, string>
            {
                ["hw:cpu_policy"] = "dedicated",
                ["hw:cpu_sockets"] = "2",
                ["hw:cpu_max_threads"] = "1",
                ["hw:mem_page_size"] = "large",
                ["hw:numa_nodes"] = "2",
                ["hw:watchdog_action"] = "reset",
                ["hw:boot_menu"] = "true",
                ["hw:pmu"] = "false",
                ["hw:serial_port_count"] = "2",
                ["hw_rng:allowed"] = "true",
                ["hw_rng:rate_bytes"] = "4096",
                ["hw_rng:rate_period"] = "1000",
                ["quota:cpu_shares"] = "2048",
                ["quota:cpu_period"] = "100000",
                ["quota:cpu_quota"] = "50000",
                ["quota:disk_read_bytes_sec"] = "10485760",
                ["quota:disk_write_bytes_sec"] = "5242880",
                ["quota:disk_total_iops_sec"] = "500",
                ["quota:vif_inbound_average"] = "1024",
                ["quota:vif_inbound_peak"] = "2048",
                ["quota:vif_inbound_burst"] = "512",
                ["quota:vif_outbound_average"] = "1000",
                ["aggregate_instance_extra_specs:ssd"] = "true",
            }),
            Image = Image(new Dictionary<string, string>
            {
                ["hw_disk_bus"] = "virtio",
                ["hw_cdrom_bus"] = "sata",
                ["hw_scsi_model"] = "virtio-scsi",
                ["hw_vif_model"] = "e1000",
                ["hw_machine_type"] = "q35",
                ["hw_firmware_type"] = "uefi",
                ["hw_video_model"] = "qxl",
                ["hw_qemu_guest_agent"] = "yes",
                ["hw_rng_model"] = "virtio",
                ["hw_pointer_model"] = "usbtablet",
                ["hw_serial_port_count"] = "2",
                ["hw_mem_page_size"] = "2MB",
                ["os_type"] = "windows",
                ["os_distro"] = "windows2022",
                ["img_config_drive"] = "mandatory",
                ["some_user_property"] = "ignored <&>",
            }),
            Owner = new InstanceOwner("6f3e1a2b3c4d4e5f8a9b0c1d2e3f4a5b", "0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5"),
            CreatedAt = CreatedAt,
            PinnedCpus = [2, 3, 4, 5],
            Ports =
            [
                BridgePort(1),
                new("3f0c1d22-aaaa-4bbb-8ccc-000000000002", "fa:16:3e:00:00:02", VifType.Ethernet) { DeviceName = "tap-eth2", Model = VifModel.Virtio },
                new("3f0c1d23-aaaa-4bbb-8ccc-000000000003", "fa:16:3e:00:00:03", VifType.Ovs) { BridgeName = "br-int", Mtu = 9000 },
                new("3f0c1d24-aaaa-4bbb-8ccc-000000000004", "fa:16:3e:00:00:04", VifType.VhostUser) { VhostUserSocketPath = "/var/run/openvswitch/vhu3f0c1d2e-aa", VhostUserMode = VhostUserMode.Server },
            ],
            BlockDevices =
            [
                new(BlockDeviceRole.Root, new FileDiskSource(dir + "/disk", DiskFormat.Qcow2)) { BootIndex = 0, Discard = DiscardMode.Unmap },
                new(BlockDeviceRole.Ephemeral, new FileDiskSource(dir + "/disk.eph0", DiskFormat.Qcow2)),
                new(BlockDeviceRole.Swap, new FileDiskSource(dir + "/disk.swap", DiskFormat.Qcow2)),
                BlockDevice.ConfigDrive(dir + "/disk.config", ConfigDriveFormat.Iso9660),
                new(BlockDeviceRole.Volume, new FileDiskSource("/var/lib/volumes/vol-file", DiskFormat.Raw)) { Serial = "11111111-2222-4333-8444-555555555551", Bus = DiskBus.Scsi },
                new(BlockDeviceRole.Volume, new BlockDiskSource("/dev/disk/by-path/ip-192.0.2.10:3260-iscsi-iqn.2010-10.org.openstack:volume-2-lun-1"))
                {
                    Serial = "11111111-2222-4333-8444-555555555552",
                    Cache = DiskCacheMode.DirectSync,
                    IoTune = new IoTune(TotalBytesSec: 1_000_000),
                },
                new(BlockDeviceRole.Volume, new RbdDiskSource("volumes", "volume-3", [new RbdMonitor("192.0.2.21", 6789), new RbdMonitor("192.0.2.22", 6789)], "cinder", Guid.Parse("457eb676-33da-42ec-9a8c-9293d545c337")))
                {
                    Serial = "11111111-2222-4333-8444-555555555553",
                    BootIndex = 1,
                },
            ],
        };
    }

    /// <summary>Builds and parses; every test asserts on the parsed document (XPath), never on the text.</summary>
    public static XDocument BuildDocument(InstanceSpec spec, HostSettings? host = null) =>
        XDocument.Parse(new DomainXmlBuilder(host ?? Host).Build(spec));

    /// <summary>
    /// A test:///default domain named and tagged as the agent would leave one (its metadata comes
    /// from the builder for <see cref="Typical"/>): what the engine adopts at start.
    /// </summary>
    /// <param name="disk">A file disk for the domain (the test driver does not open it), e.g. in another agent's instances folder.</param>
    public static string TestDriverDomainOfOurs(Guid uuid, string? disk = null)
    {
        var metadata = BuildDocument(Typical(uuid)).Root!.Element("metadata")!;
        return new XElement("domain", new XAttribute("type", "test"),
            new XElement("name", HostSettings.DomainName(uuid)),
            new XElement("uuid", uuid),
            new XElement("memory", new XAttribute("unit", "MiB"), 64),
            new XElement("vcpu", 1),
            new XElement("os", new XElement("type", "hvm")),
            disk is null ? null : new XElement("devices", new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
                new XElement("source", new XAttribute("file", disk)),
                new XElement("target", new XAttribute("dev", "vda"), new XAttribute("bus", "virtio")))),
            metadata).ToString();
    }
}
