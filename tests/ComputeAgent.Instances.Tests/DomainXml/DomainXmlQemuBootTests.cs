using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Model;
using ComputeAgent.Libvirt;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.DomainXml;

/// <summary>A representative set of built domains boots the test guest to its ready line on real QEMU.</summary>
[Collection(DomainXmlQemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class DomainXmlQemuBootTests
{
    // A bound for a hung guest under TCG on a loaded 2-core machine, not a speed assertion.
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(120);

    private readonly QemuHost host;

    public DomainXmlQemuBootTests(QemuHost host) => this.host = host;

    [SkippableFact]
    public async Task A_bios_guest_boots_from_a_qcow2_overlay_and_logs_its_serial_console()
    {
        host.SkipIfUnavailable();
        await using var run = await GuestRun.CreateAsync(host, "bios");
        var overlay = await run.OverlayAsync("disk");
        var spec = run.Spec() with { BlockDevices = [new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(overlay, DiskFormat.Qcow2))] };

        await run.BootAsync(spec);
    }

    [SkippableFact]
    public async Task A_guest_boots_its_kernel_and_initrd_directly_with_the_image_command_line()
    {
        host.SkipIfUnavailable();
        await using var run = await GuestRun.CreateAsync(host, "kernel");
        var spec = run.Spec() with
        {
            Image = Samples.Image(new Dictionary<string, string> { ["kernel_id"] = "kernel-image", ["ramdisk_id"] = "ramdisk-image", ["os_command_line"] = "console=ttyS0" }),
            KernelBoot = new KernelBoot(host.Guest.Kernel, host.Guest.Initrd),
        };

        await run.BootAsync(spec);
    }

    [SkippableFact]
    public async Task A_guest_boots_with_bridge_and_ethernet_ports_a_local_volume_and_a_config_drive()
    {
        host.SkipIfUnavailable();
        await using var run = await GuestRun.CreateAsync(host, "devices");
        var bridge = $"brca{Random.Shared.Next(100000, 999999)}";
        (await ProcessRunner.RunAsync("ip", ["link", "add", bridge, "type", "bridge"], TimeSpan.FromSeconds(10))).EnsureSuccess("ip link add bridge");
        run.OnDispose(() => ProcessRunner.RunAsync("ip", ["link", "del", bridge], TimeSpan.FromSeconds(10)));
        (await ProcessRunner.RunAsync("ip", ["link", "set", bridge, "up"], TimeSpan.FromSeconds(10))).EnsureSuccess("ip link set up");

        var overlay = await run.OverlayAsync("disk");
        var volume = Path.Combine(run.Directory, "volume.raw");
        (await ProcessRunner.RunAsync("qemu-img", ["create", "-q", "-f", "raw", volume, "16M"], TimeSpan.FromSeconds(30))).EnsureSuccess("qemu-img create volume");

        // The test guest has no CD-ROM drivers, so the config drive is the vfat (disk) kind.
        var configDrive = Path.Combine(run.Directory, "disk.config");
        (await ProcessRunner.RunAsync("mkfs.vfat", ["-C", "-n", "config-2", configDrive, "1024"], TimeSpan.FromSeconds(30))).EnsureSuccess("mkfs.vfat");

        var suffix = bridge[4..];
        var bridgeTap = $"tapb{suffix}";
        var ethernetTap = $"tape{suffix}";
        var spec = run.Spec() with
        {
            Image = Samples.Image(new Dictionary<string, string> { ["img_config_drive"] = "mandatory", ["hw_vif_model"] = "virtio" }),
            Ports =
            [
                new Port(Guid.NewGuid().ToString(), "fa:16:3e:10:00:01", VifType.Bridge) { BridgeName = bridge, DeviceName = bridgeTap, Mtu = 1400 },
                new Port(Guid.NewGuid().ToString(), "fa:16:3e:10:00:02", VifType.Ethernet) { DeviceName = ethernetTap, Model = VifModel.E1000 },
            ],
            BlockDevices =
            [
                new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(overlay, DiskFormat.Qcow2)),
                new BlockDevice(BlockDeviceRole.Volume, new FileDiskSource(volume, DiskFormat.Raw)) { Serial = "volume-local-1" },
                BlockDevice.ConfigDrive(configDrive, ConfigDriveFormat.Vfat),
            ],
        };

        await run.BootAsync(spec);

        // libvirt made both taps with the given names; the bridge port's is enslaved to the bridge with the port's MTU.
        Assert.Equal(bridge, Path.GetFileName(new FileInfo($"/sys/class/net/{bridgeTap}/master").LinkTarget));
        Assert.Equal("1400", (await File.ReadAllTextAsync($"/sys/class/net/{bridgeTap}/mtu")).Trim());
        Assert.True(Directory.Exists($"/sys/class/net/{ethernetTap}"), $"{ethernetTap} exists");
        Assert.False(File.Exists($"/sys/class/net/{ethernetTap}/master"), "an ethernet tap is left unplugged");
    }

    [SkippableFact]
    public async Task A_uefi_guest_boots_under_ovmf()
    {
        host.SkipIfUnavailable();
        Skip.IfNot(File.Exists(Samples.Host.UefiLoaderPath), $"OVMF is not installed ({Samples.Host.UefiLoaderPath} missing; apt-get install ovmf)");
        await using var run = await GuestRun.CreateAsync(host, "uefi");

        // The test guest's disk is BIOS-only (syslinux), so OVMF boots its kernel directly.
        var spec = run.Spec() with
        {
            Image = Samples.Image(new Dictionary<string, string> { ["hw_firmware_type"] = "uefi", ["kernel_id"] = "k", ["ramdisk_id"] = "r", ["os_command_line"] = "console=ttyS0" }),
            KernelBoot = new KernelBoot(host.Guest.Kernel, host.Guest.Initrd),
        };

        await run.BootAsync(spec);

        // SeaBIOS would print the same ready line: the running domain's loader, and the pflash
        // drive QEMU itself was started with, are OVMF's code image.
        var live = System.Xml.Linq.XDocument.Parse(run.LiveXml()).Root!.Element("os")!;
        var loader = live.Element("loader")!;
        Assert.Equal(("/usr/share/OVMF/OVMF_CODE_4M.fd", "pflash", "yes"), (loader.Value, (string?)loader.Attribute("type"), (string?)loader.Attribute("readonly")));
        Assert.Contains("/usr/share/OVMF/OVMF_CODE_4M.fd", await run.QemuCommandLineAsync(), StringComparison.Ordinal);
    }

    /// <summary>One guest: its scratch directory, its spec, its domain; destroyed and undefined whatever the outcome.</summary>
    private sealed class GuestRun : IAsyncDisposable
    {
        private readonly QemuHost host;
        private readonly List<Func<Task>> cleanups = [];
        private LibvirtConnection? connection;
        private LibvirtDomain? domain;

        private GuestRun(QemuHost host, string directory, HostSettings settings)
        {
            this.host = host;
            Directory = directory;
            Settings = settings;
        }

        public string Directory { get; }

        public HostSettings Settings { get; }

        public Guid Uuid { get; } = Guid.NewGuid();

        public static async Task<GuestRun> CreateAsync(QemuHost host, string purpose)
        {
            var scratch = RepositoryPaths.CreateScratch("domain-xml-" + purpose);

            // The probe the agent runs at start-up, here done with dd: does O_DIRECT work where the disks live?
            var probe = await ProcessRunner.RunAsync("dd", ["if=/dev/zero", $"of={scratch}/.odirect", "bs=4096", "count=1", "oflag=direct"], TimeSpan.FromSeconds(30));
            File.Delete(Path.Combine(scratch, ".odirect"));
            var settings = new HostSettings
            {
                VirtType = VirtType.Qemu,

                // TCG: no host CPU to model or pass through; QEMU's default CPU.
                CpuMode = CpuMode.None,
                InstancesDirectory = scratch,
                DirectIoSupported = probe.ExitCode == 0,
            };
            return new GuestRun(host, scratch, settings);
        }

        public InstanceSpec Spec() => Samples.Typical(Uuid) with
        {
            Name = "boot test",
            Flavor = new Flavor("tiny", 1, 256, 1),
            Ports = [],
            BlockDevices = [],
        };

        public async Task<string> OverlayAsync(string name)
        {
            var path = Path.Combine(Directory, name + ".qcow2");
            (await ProcessRunner.RunAsync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", host.Guest.Disk, path], TimeSpan.FromSeconds(30)))
                .EnsureSuccess("qemu-img create overlay");
            return path;
        }

        public void OnDispose(Func<Task> cleanup) => cleanups.Add(cleanup);

        /// <summary>The running domain's XML as libvirt has it now (not the XML the test defined).</summary>
        public string LiveXml() => domain!.GetXmlDesc();

        /// <summary>The command line libvirt started QEMU with (its pid file under /run/libvirt/qemu).</summary>
        public async Task<string> QemuCommandLineAsync()
        {
            var pid = (await File.ReadAllTextAsync($"/run/libvirt/qemu/{domain!.Name}.pid")).Trim();
            return (await File.ReadAllTextAsync($"/proc/{pid}/cmdline")).Replace('\0', ' ');
        }

        public async Task BootAsync(InstanceSpec spec)
        {
            var xml = new DomainXmlBuilder(Settings).Build(spec);
            await DomainXmlLibvirtTests.AssertSchemaValid(xml, Directory);
            System.IO.Directory.CreateDirectory(Path.Combine(Directory, Uuid.ToString()));
            connection = LibvirtConnection.Open(QemuHost.Uri);
            domain = connection.DefineXml(xml);
            domain.Create();
            var console = Settings.ConsoleLogPath(Uuid);
            await EventWaits.WaitForConsoleLineAsync(console, host.Guest.ReadyLine, Boot);
            Assert.Equal(DomainState.Running, domain.GetState().State);
            Assert.Equal(InstanceMetadata.From(spec), InstanceMetadata.Parse(domain.GetXmlDesc()));
        }

        public async ValueTask DisposeAsync()
        {
            if (domain is not null)
            {
                if (domain.IsActive)
                {
                    domain.Destroy();
                }

                domain.Undefine(DomainUndefineFlags.ManagedSave | DomainUndefineFlags.SnapshotsMetadata | DomainUndefineFlags.Nvram);
                domain.Dispose();
            }

            connection?.Dispose();
            foreach (var cleanup in cleanups)
            {
                await cleanup();
            }

            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}
