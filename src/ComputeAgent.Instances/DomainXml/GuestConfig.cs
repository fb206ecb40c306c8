using System.Globalization;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.DomainXml;

/// <summary>One guest NUMA cell: its vCPUs (first..last) and memory.</summary>
internal readonly record struct NumaCell(int FirstCpu, int LastCpu, long MemoryMiB);

/// <summary>A disk as it will be written: the input plus the decisions (bus, target, cache, boot order).</summary>
internal sealed record GuestDisk(BlockDevice Device, DiskDeviceType DeviceType, DiskBus Bus, string Target, DiskCacheMode Cache, DiscardMode Discard, int? BootOrder, IoTune IoTune);

/// <summary>A port as it will be written: the input plus its model and bandwidth.</summary>
internal sealed record GuestInterface(Port Port, VifModel Model, Bandwidth Bandwidth);

/// <summary>
/// The guest decided from flavor + image + host, with Nova's precedence and conflict rules applied.
/// Everything the XML writer needs and nothing it must still decide.
/// </summary>
internal sealed record GuestConfig
{
    public required InstanceSpec Spec { get; init; }

    public required HostSettings Host { get; init; }

    public required string DomainName { get; init; }

    public required string MachineType { get; init; }

    public required FirmwareType Firmware { get; init; }

    public required OsType OsType { get; init; }

    public required CpuTopology Topology { get; init; }

    public required CpuPolicy CpuPolicy { get; init; }

    public required IReadOnlyList<NumaCell> NumaCells { get; init; }

    /// <summary>Null: normal pages.</summary>
    public required long? HugePageSizeKiB { get; init; }

    public required WatchdogAction Watchdog { get; init; }

    public required bool BootMenu { get; init; }

    public required bool? Pmu { get; init; }

    public required int SerialPortCount { get; init; }

    public required PointerModel Pointer { get; init; }

    public required VideoModel Video { get; init; }

    /// <summary>Null: the model's default video RAM.</summary>
    public required int? VideoRamMiB { get; init; }

    public required bool GuestAgent { get; init; }

    public required bool Rng { get; init; }

    public required FlavorExtraSpecs FlavorSpecs { get; init; }

    public required ImageProperties ImageProperties { get; init; }

    public required IReadOnlyList<GuestDisk> Disks { get; init; }

    public required IReadOnlyList<GuestInterface> Interfaces { get; init; }

    public required bool NeedsScsiController { get; init; }

    public required ScsiModel ScsiModel { get; init; }

    public required bool PerDeviceBootOrder { get; init; }

    public required string? KernelCommandLine { get; init; }

    public static GuestConfig Resolve(InstanceSpec spec, HostSettings host)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(host);
        if (spec.Uuid == Guid.Empty)
        {
            throw new InvalidInstanceSpecException("uuid", spec.Uuid.ToString(), "a non-nil UUID");
        }

        SpecValues.CheckText("name", spec.Name);
        SpecValues.CheckText("owner.project_id", spec.Owner?.ProjectId);
        SpecValues.CheckText("owner.user_id", spec.Owner?.UserId);
        var flavor = spec.Flavor ?? throw new InvalidInstanceSpecException("flavor", null, "a flavor");
        var image = spec.Image ?? throw new InvalidInstanceSpecException("image", null, "an image");
        flavor.Validate();
        image.Validate();
        (spec.Guest ?? throw new InvalidInstanceSpecException("guest", null, "the guest's boot data (may be empty)")).Validate();
        var specs = FlavorExtraSpecs.Parse(flavor.ExtraSpecs);
        var props = ImageProperties.Parse(image.Properties);

        if (image.DiskFormat is "aki" or "ari")
        {
            throw new InvalidInstanceSpecException("image.disk_format", image.DiskFormat, "a disk image: a kernel (aki) or ramdisk (ari) is named by a disk image's kernel_id / ramdisk_id");
        }

        if (flavor.RootGiB > 0 && image.MinDiskGiB > flavor.RootGiB)
        {
            throw new InvalidInstanceSpecException("image.min_disk", Text(image.MinDiskGiB), $"at most the flavor's root disk ({flavor.RootGiB} GiB)");
        }

        if (image.MinRamMiB > flavor.RamMiB)
        {
            throw new InvalidInstanceSpecException("image.min_ram", Text(image.MinRamMiB), $"at most the flavor's RAM ({flavor.RamMiB} MiB)");
        }

        var machine = props.MachineType ?? host.DefaultMachineType;
        var isQ35 = machine.Contains("q35", StringComparison.Ordinal);
        var cpuPolicy = ResolveCpuPolicy(specs, props);
        var pageSize = ResolvePageSize(specs, props, host, flavor.RamMiB);
        var numa = ResolveNuma(specs, props, flavor, cpuPolicy == CpuPolicy.Dedicated || pageSize is not null);
        var serialPorts = ResolveSerialPortCount(specs, props);
        CheckPinning(spec, host, cpuPolicy);

        var diskBus = props.DiskBus ?? DiskBus.Virtio;
        var cdromBus = props.CdromBus ?? (isQ35 ? DiskBus.Sata : DiskBus.Ide);
        var disks = ResolveDisks(spec, host, specs, image, props, diskBus, cdromBus, isQ35, out var perDeviceBoot);
        var interfaces = ResolveInterfaces(spec, specs, props);
        var commandLine = ResolveKernelBoot(spec, props, disks);

        return new GuestConfig
        {
            Spec = spec,
            Host = host,
            DomainName = HostSettings.DomainName(spec.Uuid),
            MachineType = machine,
            Firmware = props.FirmwareType,
            OsType = props.OsType,
            Topology = CpuTopologySelection.Select(flavor.Vcpus, specs.Topology, props.Topology),
            CpuPolicy = cpuPolicy,
            NumaCells = numa,
            HugePageSizeKiB = pageSize,

            // The flavor wins over the image for the watchdog and the boot menu (Nova's order).
            Watchdog = specs.WatchdogAction ?? props.WatchdogAction ?? WatchdogAction.Disabled,
            BootMenu = specs.BootMenu ?? props.BootMenu ?? false,
            Pmu = ResolveConflict("hw:pmu", "hw_pmu", specs.Pmu, props.Pmu),
            SerialPortCount = serialPorts,
            Pointer = ResolveConflict("hw:pointer_model", "hw_pointer_model", specs.PointerModel, props.PointerModel) ?? host.DefaultPointerModel,
            Video = props.VideoModel ?? VideoModel.Virtio,
            VideoRamMiB = ResolveVideoRam(specs, props),
            GuestAgent = props.QemuGuestAgent,
            // Nova's libvirt driver gives every qemu/kvm guest a virtio RNG unless the flavor's hw_rng:allowed is false.
            Rng = specs.RngAllowed,
            FlavorSpecs = specs,
            ImageProperties = props,
            Disks = disks,
            Interfaces = interfaces,
            NeedsScsiController = disks.Any(d => d.Bus == DiskBus.Scsi),
            ScsiModel = props.ScsiModel ?? ScsiModel.VirtioScsi,
            PerDeviceBootOrder = perDeviceBoot,
            KernelCommandLine = commandLine,
        };
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Nova: a dedicated flavor stays dedicated; a shared flavor refuses a dedicated image; an unset flavor takes the image's.</summary>
    private static CpuPolicy ResolveCpuPolicy(FlavorExtraSpecs specs, ImageProperties props) => specs.CpuPolicy switch
    {
        CpuPolicy.Dedicated => CpuPolicy.Dedicated,
        CpuPolicy.Shared when props.CpuPolicy == CpuPolicy.Dedicated =>
            throw new InvalidInstanceSpecException("image.properties[hw_cpu_policy]", "dedicated", "shared or unset: the flavor's hw:cpu_policy is shared"),
        CpuPolicy.Shared => CpuPolicy.Shared,
        _ => props.CpuPolicy ?? CpuPolicy.Shared,
    };

    /// <summary>Nova: the image may choose a page size only when the flavor says large or any.</summary>
    private static long? ResolvePageSize(FlavorExtraSpecs specs, ImageProperties props, HostSettings host, int ramMiB)
    {
        if (specs.MemPageSize is not { } flavorRequest)
        {
            return props.MemPageSize is { } forbidden
                ? throw new InvalidInstanceSpecException("image.properties[hw_mem_page_size]", forbidden.ToString(), "unset: the flavor has no hw:mem_page_size")
                : null;
        }

        var request = flavorRequest;
        if (props.MemPageSize is { } imageRequest)
        {
            request = flavorRequest.Kind is MemPageSizeKind.Large or MemPageSizeKind.Any
                ? imageRequest
                : throw new InvalidInstanceSpecException("image.properties[hw_mem_page_size]", imageRequest.ToString(), $"unset: the flavor's hw:mem_page_size is {flavorRequest}");
        }

        var field = props.MemPageSize is null ? "flavor.extra_specs[hw:mem_page_size]" : "image.properties[hw_mem_page_size]";
        long? size = request.Kind switch
        {
            MemPageSizeKind.Small => null,
            MemPageSizeKind.Any => host.HugePageSizesKiB.Contains(host.DefaultHugePageSizeKiB) ? host.DefaultHugePageSizeKiB : null,
            MemPageSizeKind.Large => host.DefaultHugePageSizeKiB,
            _ => request.SizeKiB,
        };
        if (size is { } s)
        {
            if (!host.HugePageSizesKiB.Contains(s))
            {
                throw new InvalidInstanceSpecException(field, request.ToString(), "a huge page size this host has: " + (host.HugePageSizesKiB.Count == 0 ? "none" : string.Join(", ", host.HugePageSizesKiB.Select(p => p + "KiB"))));
            }

            if (ramMiB * 1024L % s != 0)
            {
                throw new InvalidInstanceSpecException(field, request.ToString(), $"a page size that divides the flavor's RAM ({ramMiB} MiB)");
            }
        }

        return size;
    }

    /// <summary>
    /// Nova: the image may set hw_numa_nodes only when the flavor does not (or agrees); pinned or huge-page
    /// guests get one implicit cell; vCPUs and memory split evenly, so both must divide by the cell count.
    /// </summary>
    private static NumaCell[] ResolveNuma(FlavorExtraSpecs specs, ImageProperties props, Flavor flavor, bool implicitCell)
    {
        if (specs.NumaNodes is { } f && props.NumaNodes is { } i && f != i)
        {
            throw new InvalidInstanceSpecException("image.properties[hw_numa_nodes]", Text(i), $"unset or {f}: the flavor sets hw:numa_nodes");
        }

        var field = specs.NumaNodes is not null ? "flavor.extra_specs[hw:numa_nodes]" : "image.properties[hw_numa_nodes]";
        var nodes = specs.NumaNodes ?? props.NumaNodes ?? (implicitCell ? 1 : 0);
        if (nodes == 0)
        {
            return [];
        }

        if (nodes > flavor.Vcpus || flavor.Vcpus % nodes != 0 || flavor.RamMiB % nodes != 0)
        {
            throw new InvalidInstanceSpecException(field, Text(nodes), $"a count that divides both the vCPUs ({flavor.Vcpus}) and the RAM ({flavor.RamMiB} MiB) evenly");
        }

        var cpusPerCell = flavor.Vcpus / nodes;
        var cells = new NumaCell[nodes];
        for (var n = 0; n < nodes; n++)
        {
            cells[n] = new NumaCell(n * cpusPerCell, ((n + 1) * cpusPerCell) - 1, flavor.RamMiB / nodes);
        }

        return cells;
    }

    /// <summary>Nova: hw_video_ram only up to the flavor's hw_video:ram_max_mb, and only on models that have video RAM.</summary>
    private static int? ResolveVideoRam(FlavorExtraSpecs specs, ImageProperties props)
    {
        if (props.VideoRamMiB is not { } ram)
        {
            return null;
        }

        if (ram > specs.VideoRamMaxMiB)
        {
            throw new InvalidInstanceSpecException("image.properties[hw_video_ram]", Text(ram), $"at most the flavor's hw_video:ram_max_mb ({specs.VideoRamMaxMiB} MiB)");
        }

        return props.VideoModel is VideoModel.Vga or VideoModel.Cirrus or VideoModel.Qxl
            ? ram
            : throw new InvalidInstanceSpecException("image.properties[hw_video_ram]", Text(ram), "unset unless hw_video_model is vga, cirrus or qxl");
    }

    /// <summary>Nova: the image may ask for fewer serial ports than the flavor allows, never more.</summary>
    private static int ResolveSerialPortCount(FlavorExtraSpecs specs, ImageProperties props)
    {
        if (props.SerialPortCount is { } image)
        {
            return specs.SerialPortCount is { } flavor && image > flavor
                ? throw new InvalidInstanceSpecException("image.properties[hw_serial_port_count]", Text(image), $"at most the flavor's hw:serial_port_count ({flavor})")
                : image;
        }

        return specs.SerialPortCount ?? 1;
    }

    /// <summary>Nova's FlavorImageConflict: both may set it, but then they must agree.</summary>
    private static T? ResolveConflict<T>(string flavorKey, string imageKey, T? flavor, T? image)
        where T : struct
    {
        if (flavor is { } f && image is { } i && !EqualityComparer<T>.Default.Equals(f, i))
        {
            throw new InvalidInstanceSpecException($"image.properties[{imageKey}]", i.ToString(), $"unset or {f}: the flavor sets {flavorKey}");
        }

        return flavor ?? image;
    }

    private static void CheckPinning(InstanceSpec spec, HostSettings host, CpuPolicy policy)
    {
        if (policy != CpuPolicy.Dedicated)
        {
            if (spec.PinnedCpus is { Count: > 0 })
            {
                throw new InvalidInstanceSpecException("pinned_cpus", string.Join(",", spec.PinnedCpus), "none unless hw:cpu_policy is dedicated");
            }

            return;
        }

        if (host.DedicatedCpuSet.Count == 0)
        {
            throw new InvalidInstanceSpecException("flavor.extra_specs[hw:cpu_policy]", "dedicated", "shared: this host has no cpu_dedicated_set");
        }

        var pinned = spec.PinnedCpus ?? [];
        var allowed = $"{spec.Flavor.Vcpus} distinct host CPUs from the dedicated set {CpuList.Format(host.DedicatedCpuSet)}";
        if (pinned.Count != spec.Flavor.Vcpus || pinned.Distinct().Count() != pinned.Count || pinned.Any(c => !host.DedicatedCpuSet.Contains(c)))
        {
            throw new InvalidInstanceSpecException("pinned_cpus", string.Join(",", pinned), allowed);
        }
    }

    private static GuestDisk[] ResolveDisks(
        InstanceSpec spec, HostSettings host, FlavorExtraSpecs specs, ImageMeta image, ImageProperties props,
        DiskBus diskBus, DiskBus cdromBus, bool isQ35, out bool perDeviceBoot)
    {
        var devices = spec.BlockDevices ?? [];
        for (var i = 0; i < devices.Count; i++)
        {
            (devices[i] ?? throw new InvalidInstanceSpecException($"block_devices[{i}]", null, "a block device")).Validate(i);
        }

        CheckCount(devices, BlockDeviceRole.Root, 1, "at most one root disk");
        CheckCount(devices, BlockDeviceRole.Swap, spec.Flavor.SwapGiB > 0 ? 1 : 0, "a swap disk only when the flavor has swap_gb");
        CheckCount(devices, BlockDeviceRole.ConfigDrive, 1, "at most one config drive");
        if (spec.Flavor.EphemeralGiB == 0)
        {
            CheckCount(devices, BlockDeviceRole.Ephemeral, 0, "ephemeral disks only when the flavor has ephemeral_gb");
        }

        if (props.ConfigDrive == ConfigDriveRequirement.Mandatory && !devices.Any(d => d.Role == BlockDeviceRole.ConfigDrive))
        {
            throw new InvalidInstanceSpecException("block_devices", "(no config drive)", "a config drive: the image's img_config_drive is mandatory");
        }

        perDeviceBoot = devices.Any(d => d.BootIndex is not null);
        if (perDeviceBoot && devices.Where(d => d.BootIndex is not null).GroupBy(d => d.BootIndex).Any(g => g.Count() > 1))
        {
            throw new InvalidInstanceSpecException("block_devices.boot_index", string.Join(",", devices.Select(d => d.BootIndex)), "each boot index at most once");
        }

        // Nova's order: root, ephemerals, swap, volumes, and the config drive last.
        var ordered = devices.OrderBy(d => d.Role switch
        {
            BlockDeviceRole.Root => 0,
            BlockDeviceRole.Ephemeral => 1,
            BlockDeviceRole.Swap => 2,
            BlockDeviceRole.Volume => 3,
            _ => 4,
        });
        var letters = new Dictionary<string, int>(StringComparer.Ordinal);
        var result = new List<GuestDisk>(devices.Count);
        foreach (var device in ordered)
        {
            var index = IndexOf(devices, device);
            var isCdrom = device.DeviceType == DiskDeviceType.Cdrom || (device.Role == BlockDeviceRole.Root && image.IsIso);
            var bus = device.Bus ?? (isCdrom ? cdromBus : diskBus);
            if (isCdrom && bus == DiskBus.Virtio)
            {
                throw new InvalidInstanceSpecException($"block_devices[{index}].disk_bus", "virtio", "ide, sata, scsi, usb for a CD-ROM");
            }

            if (bus == DiskBus.Ide && isQ35)
            {
                var field = device.Bus is not null ? $"block_devices[{index}].disk_bus" : isCdrom ? "image.properties[hw_cdrom_bus]" : "image.properties[hw_disk_bus]";
                throw new InvalidInstanceSpecException(field, "ide", "virtio, scsi, sata, usb: q35 machines have no IDE bus");
            }

            var prefix = bus switch
            {
                DiskBus.Virtio => "vd",
                DiskBus.Ide => "hd",
                _ => "sd",
            };
            letters.TryGetValue(prefix, out var n);
            letters[prefix] = n + 1;
            if (prefix == "hd" && n >= 4)
            {
                throw new InvalidInstanceSpecException($"block_devices[{index}].disk_bus", "ide", "at most 4 IDE devices");
            }

            int? bootOrder = perDeviceBoot ? device.BootIndex + 1 : null;
            var tune = device.IoTune ?? (device.Role == BlockDeviceRole.Volume ? IoTune.None : specs.DiskIoTune);
            result.Add(new GuestDisk(
                device,
                isCdrom ? DiskDeviceType.Cdrom : DiskDeviceType.Disk,
                bus,
                prefix + DiskLetters(n),
                device.Cache ?? host.DefaultCacheMode,
                device.Discard ?? host.DefaultDiscard,
                bootOrder,
                tune));
        }

        return [.. result];
    }

    private static int IndexOf(IReadOnlyList<BlockDevice> devices, BlockDevice device)
    {
        for (var i = 0; i < devices.Count; i++)
        {
            if (ReferenceEquals(devices[i], device))
            {
                return i;
            }
        }

        return -1;
    }

    private static void CheckCount(IReadOnlyList<BlockDevice> devices, BlockDeviceRole role, int max, string allowed)
    {
        var count = devices.Count(d => d.Role == role);
        if (count > max)
        {
            throw new InvalidInstanceSpecException("block_devices", $"{count} × {role}", allowed);
        }
    }

    /// <summary>a..z, aa..zz, as libvirt names the 27th disk vdaa.</summary>
    private static string DiskLetters(int index) =>
        index < 26 ? ((char)('a' + index)).ToString() : DiskLetters((index / 26) - 1) + (char)('a' + (index % 26));

    private static GuestInterface[] ResolveInterfaces(InstanceSpec spec, FlavorExtraSpecs specs, ImageProperties props)
    {
        var ports = spec.Ports ?? [];
        var macs = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var taps = new HashSet<string>(StringComparer.Ordinal);
        var result = new GuestInterface[ports.Count];
        for (var i = 0; i < ports.Count; i++)
        {
            var port = ports[i] ?? throw new InvalidInstanceSpecException($"ports[{i}]", null, "a port");
            port.Validate(i);
            if (!macs.Add(port.MacAddress))
            {
                throw new InvalidInstanceSpecException($"ports[{i}].mac", port.MacAddress, "a MAC no other port of the instance has");
            }

            if (port.VifType != VifType.VhostUser && !taps.Add(port.EffectiveDeviceName))
            {
                throw new InvalidInstanceSpecException($"ports[{i}].devname", port.EffectiveDeviceName, "a device name no other port of the instance has");
            }

            // vhost-user is virtio by construction; otherwise the port's model, then the image's.
            var model = port.VifType == VifType.VhostUser ? VifModel.Virtio : port.Model ?? props.VifModel ?? VifModel.Virtio;
            result[i] = new GuestInterface(port, model, port.Bandwidth ?? specs.VifBandwidth);
        }

        return result;
    }

    private static string? ResolveKernelBoot(InstanceSpec spec, ImageProperties props, IReadOnlyList<GuestDisk> disks)
    {
        if (props.KernelId is not null && spec.KernelBoot is null)
        {
            throw new InvalidInstanceSpecException("kernel_boot", null, "the cached kernel (and ramdisk) paths: the image has kernel_id " + props.KernelId);
        }

        if (spec.KernelBoot is not { } boot)
        {
            return null;
        }

        SpecValues.CheckPath("kernel_boot.kernel_path", boot.KernelPath);
        if (boot.RamdiskPath is not null)
        {
            SpecValues.CheckPath("kernel_boot.ramdisk_path", boot.RamdiskPath);
        }
        else if (props.RamdiskId is not null)
        {
            throw new InvalidInstanceSpecException("kernel_boot.ramdisk_path", null, "the cached ramdisk path: the image has ramdisk_id " + props.RamdiskId);
        }

        // Nova's default command line roots the guest on its first disk.
        var root = disks.FirstOrDefault(d => d.Device.Role == BlockDeviceRole.Root)?.Target ?? "vda";
        return props.OsCommandLine ?? $"root=/dev/{root} console=tty0 console=ttyS0";
    }
}

/// <summary>libvirt's CPU list syntax ("0-3,8").</summary>
internal static class CpuList
{
    public static string Format(IEnumerable<int> cpus)
    {
        var sorted = cpus.Distinct().Order().ToArray();
        var parts = new List<string>();
        for (var i = 0; i < sorted.Length;)
        {
            var j = i;
            while (j + 1 < sorted.Length && sorted[j + 1] == sorted[j] + 1)
            {
                j++;
            }

            parts.Add(i == j
                ? sorted[i].ToString(CultureInfo.InvariantCulture)
                : string.Create(CultureInfo.InvariantCulture, $"{sorted[i]}-{sorted[j]}"));
            i = j + 1;
        }

        return string.Join(",", parts);
    }
}
