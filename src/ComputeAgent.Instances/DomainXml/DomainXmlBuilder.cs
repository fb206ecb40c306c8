using System.Globalization;
using System.Text;
using System.Xml;
using ComputeAgent.Instances.Model;

namespace ComputeAgent.Instances.DomainXml;

/// <summary>
/// Builds the libvirt domain XML of an instance from its flavor, image metadata, ports and block
/// devices (Nova's _get_guest_config). Every value goes through <see cref="XmlWriter"/>, which
/// escapes it; inputs that no guest could have are refused with <see cref="InvalidInstanceSpecException"/>
/// before anything is written. Thread-safe: holds only the host settings.
/// </summary>
public sealed class DomainXmlBuilder
{
    private const string GuestAgentChannel = "org.qemu.guest_agent.0";

    private static readonly XmlWriterSettings WriterSettings = new()
    {
        Indent = true,
        IndentChars = "  ",
        NewLineChars = "\n",
        OmitXmlDeclaration = true,
        CheckCharacters = true,
    };

    private readonly HostSettings host;

    public DomainXmlBuilder(HostSettings host)
    {
        ArgumentNullException.ThrowIfNull(host);
        host.Validate();
        this.host = host;
    }

    public HostSettings Host => host;

    /// <summary>The domain XML for virDomainDefineXML.</summary>
    public string Build(InstanceSpec spec)
    {
        var config = GuestConfig.Resolve(spec, host);
        var text = new StringBuilder(6144);
        using (var writer = XmlWriter.Create(text, WriterSettings))
        {
            WriteDomain(writer, config);
        }

        return text.ToString();
    }

    private static void WriteDomain(XmlWriter w, GuestConfig c)
    {
        var spec = c.Spec;
        w.WriteStartElement("domain");
        w.WriteAttributeString("type", c.Host.VirtType == VirtType.Kvm ? "kvm" : "qemu");
        w.WriteElementString("name", c.DomainName);
        w.WriteElementString("uuid", spec.Uuid.ToString());

        w.WriteStartElement("metadata");
        InstanceMetadata.From(spec).WriteTo(w);
        w.WriteEndElement();

        w.WriteStartElement("memory");
        w.WriteAttributeString("unit", "MiB");
        w.WriteString(Text(spec.Flavor.RamMiB));
        w.WriteEndElement();

        if (c.HugePageSizeKiB is { } pageSize)
        {
            w.WriteStartElement("memoryBacking");
            w.WriteStartElement("hugepages");
            w.WriteStartElement("page");
            w.WriteAttributeString("size", Text(pageSize));
            w.WriteAttributeString("unit", "KiB");
            w.WriteEndElement();
            w.WriteEndElement();
            w.WriteEndElement();
        }

        w.WriteStartElement("vcpu");
        w.WriteAttributeString("placement", "static");
        if (c.CpuPolicy == CpuPolicy.Shared && c.Host.SharedCpuSet.Count > 0)
        {
            w.WriteAttributeString("cpuset", CpuList.Format(c.Host.SharedCpuSet));
        }

        w.WriteString(Text(spec.Flavor.Vcpus));
        w.WriteEndElement();

        WriteCpuTune(w, c);
        WriteSysinfo(w, spec, c.Host.Smbios);
        WriteOs(w, c);
        WriteFeatures(w, c);
        WriteCpu(w, c);
        WriteClock(w, c);
        w.WriteElementString("on_poweroff", "destroy");
        w.WriteElementString("on_reboot", "restart");
        w.WriteElementString("on_crash", "destroy");

        w.WriteStartElement("devices");
        foreach (var disk in c.Disks)
        {
            WriteDisk(w, disk);
        }

        if (c.NeedsScsiController)
        {
            w.WriteStartElement("controller");
            w.WriteAttributeString("type", "scsi");
            w.WriteAttributeString("index", "0");
            w.WriteAttributeString("model", c.ScsiModel == ScsiModel.VirtioScsi ? "virtio-scsi" : "lsilogic");
            w.WriteEndElement();
        }

        foreach (var nic in c.Interfaces)
        {
            WriteInterface(w, nic);
        }

        WriteConsoles(w, c);
        WriteOtherDevices(w, c);
        w.WriteEndElement();

        w.WriteEndElement();
    }

    private static void WriteCpuTune(XmlWriter w, GuestConfig c)
    {
        var specs = c.FlavorSpecs;
        var pinned = c.CpuPolicy == CpuPolicy.Dedicated ? c.Spec.PinnedCpus : null;
        if (specs.CpuShares is null && specs.CpuPeriod is null && specs.CpuQuota is null && pinned is null)
        {
            return;
        }

        w.WriteStartElement("cputune");
        if (specs.CpuShares is { } shares)
        {
            w.WriteElementString("shares", Text(shares));
        }

        if (pinned is not null)
        {
            for (var vcpu = 0; vcpu < pinned.Count; vcpu++)
            {
                w.WriteStartElement("vcpupin");
                w.WriteAttributeString("vcpu", Text(vcpu));
                w.WriteAttributeString("cpuset", Text(pinned[vcpu]));
                w.WriteEndElement();
            }

            // Nova's default emulator thread placement: anywhere the instance's vCPUs are pinned.
            w.WriteStartElement("emulatorpin");
            w.WriteAttributeString("cpuset", CpuList.Format(pinned));
            w.WriteEndElement();
        }

        if (specs.CpuPeriod is { } period)
        {
            w.WriteElementString("period", Text(period));
        }

        if (specs.CpuQuota is { } quota)
        {
            w.WriteElementString("quota", Text(quota));
        }

        w.WriteEndElement();
    }

    private static void WriteSysinfo(XmlWriter w, InstanceSpec spec, SmbiosSystem smbios)
    {
        // What the guest reads from SMBIOS (dmidecode): cloud-init and licensing tools key on it.
        w.WriteStartElement("sysinfo");
        w.WriteAttributeString("type", "smbios");
        w.WriteStartElement("system");
        Entry("manufacturer", smbios.Manufacturer);
        Entry("product", smbios.Product);
        if (smbios.Version.Length > 0)
        {
            Entry("version", smbios.Version);
        }

        Entry("serial", spec.Uuid.ToString());
        Entry("uuid", spec.Uuid.ToString());
        Entry("family", smbios.Family);
        w.WriteEndElement();
        w.WriteEndElement();

        void Entry(string name, string value)
        {
            w.WriteStartElement("entry");
            w.WriteAttributeString("name", name);
            w.WriteString(value);
            w.WriteEndElement();
        }
    }

    private static void WriteOs(XmlWriter w, GuestConfig c)
    {
        w.WriteStartElement("os");
        w.WriteStartElement("type");
        w.WriteAttributeString("arch", "x86_64");
        w.WriteAttributeString("machine", c.MachineType);
        w.WriteString("hvm");
        w.WriteEndElement();

        if (c.Firmware == FirmwareType.Uefi)
        {
            w.WriteStartElement("loader");
            w.WriteAttributeString("readonly", "yes");
            w.WriteAttributeString("type", "pflash");
            w.WriteString(c.Host.UefiLoaderPath);
            w.WriteEndElement();

            // No path: libvirt keeps the per-domain variable store under /var/lib/libvirt/qemu/nvram.
            w.WriteStartElement("nvram");
            w.WriteAttributeString("template", c.Host.UefiNvramTemplatePath);
            w.WriteEndElement();
        }

        if (c.Spec.KernelBoot is { } boot)
        {
            w.WriteElementString("kernel", boot.KernelPath);
            if (boot.RamdiskPath is not null)
            {
                w.WriteElementString("initrd", boot.RamdiskPath);
            }

            w.WriteElementString("cmdline", c.KernelCommandLine);
        }

        if (!c.PerDeviceBootOrder)
        {
            // libvirt refuses <os><boot> together with per-device <boot order>.
            if (c.Spec.Image.IsIso)
            {
                Boot("cdrom");
            }

            Boot("hd");
        }

        if (c.BootMenu)
        {
            w.WriteStartElement("bootmenu");
            w.WriteAttributeString("enable", "yes");
            w.WriteEndElement();
        }

        w.WriteStartElement("smbios");
        w.WriteAttributeString("mode", "sysinfo");
        w.WriteEndElement();
        w.WriteEndElement();

        void Boot(string device)
        {
            w.WriteStartElement("boot");
            w.WriteAttributeString("dev", device);
            w.WriteEndElement();
        }
    }

    private static void WriteFeatures(XmlWriter w, GuestConfig c)
    {
        w.WriteStartElement("features");
        w.WriteStartElement("acpi");
        w.WriteEndElement();
        w.WriteStartElement("apic");
        w.WriteEndElement();

        // As Nova for x86 guests: QEMU's vmcoreinfo device lets a host-side dump of the guest
        // (virsh dump) be read with the guest kernel's own layout (KASLR offsets).
        w.WriteStartElement("vmcoreinfo");
        w.WriteEndElement();
        if (c.OsType == OsType.Windows)
        {
            // Nova's Hyper-V enlightenments for Windows guests.
            w.WriteStartElement("hyperv");
            State("relaxed", true);
            State("vapic", true);
            w.WriteStartElement("spinlocks");
            w.WriteAttributeString("state", "on");
            w.WriteAttributeString("retries", "8191");
            w.WriteEndElement();
            w.WriteEndElement();
        }

        if (c.Pmu is { } pmu)
        {
            State("pmu", pmu);
        }

        w.WriteEndElement();

        void State(string name, bool on)
        {
            w.WriteStartElement(name);
            w.WriteAttributeString("state", on ? "on" : "off");
            w.WriteEndElement();
        }
    }

    private static void WriteCpu(XmlWriter w, GuestConfig c)
    {
        w.WriteStartElement("cpu");
        switch (c.Host.CpuMode)
        {
            case CpuMode.HostPassthrough:
                w.WriteAttributeString("mode", "host-passthrough");
                break;
            case CpuMode.HostModel:
                w.WriteAttributeString("mode", "host-model");
                break;
            case CpuMode.Custom:
                w.WriteAttributeString("mode", "custom");
                w.WriteAttributeString("match", "exact");
                w.WriteStartElement("model");
                w.WriteAttributeString("fallback", "forbid");
                w.WriteString(c.Host.CpuModel);
                w.WriteEndElement();
                break;
        }

        w.WriteStartElement("topology");
        w.WriteAttributeString("sockets", Text(c.Topology.Sockets));
        w.WriteAttributeString("cores", Text(c.Topology.Cores));
        w.WriteAttributeString("threads", Text(c.Topology.Threads));
        w.WriteEndElement();

        if (c.NumaCells.Count > 0)
        {
            w.WriteStartElement("numa");
            for (var i = 0; i < c.NumaCells.Count; i++)
            {
                var cell = c.NumaCells[i];
                w.WriteStartElement("cell");
                w.WriteAttributeString("id", Text(i));
                w.WriteAttributeString("cpus", cell.FirstCpu == cell.LastCpu ? Text(cell.FirstCpu) : string.Create(CultureInfo.InvariantCulture, $"{cell.FirstCpu}-{cell.LastCpu}"));
                w.WriteAttributeString("memory", Text(cell.MemoryMiB));
                w.WriteAttributeString("unit", "MiB");
                w.WriteEndElement();
            }

            w.WriteEndElement();
        }

        w.WriteEndElement();
    }

    private static void WriteClock(XmlWriter w, GuestConfig c)
    {
        // Windows keeps the RTC in local time; everything else in UTC. Timers as Nova sets them for x86.
        var windows = c.OsType == OsType.Windows;
        w.WriteStartElement("clock");
        w.WriteAttributeString("offset", windows ? "localtime" : "utc");
        Timer("pit", "tickpolicy", "delay");
        Timer("rtc", "tickpolicy", "catchup");
        Timer("hpet", "present", "no");
        if (windows)
        {
            Timer("hypervclock", "present", "yes");
        }

        w.WriteEndElement();

        void Timer(string name, string attribute, string value)
        {
            w.WriteStartElement("timer");
            w.WriteAttributeString("name", name);
            w.WriteAttributeString(attribute, value);
            w.WriteEndElement();
        }
    }

    private static void WriteDisk(XmlWriter w, GuestDisk disk)
    {
        var device = disk.Device;
        w.WriteStartElement("disk");
        w.WriteAttributeString("type", device.Source switch
        {
            FileDiskSource => "file",
            BlockDiskSource => "block",
            _ => "network",
        });
        w.WriteAttributeString("device", disk.DeviceType == DiskDeviceType.Cdrom ? "cdrom" : "disk");

        w.WriteStartElement("driver");
        w.WriteAttributeString("name", "qemu");
        w.WriteAttributeString("type", device.Source is FileDiskSource { Format: DiskFormat.Qcow2 } ? "qcow2" : "raw");
        w.WriteAttributeString("cache", disk.Cache switch
        {
            DiskCacheMode.None => "none",
            DiskCacheMode.Writeback => "writeback",
            DiskCacheMode.Writethrough => "writethrough",
            DiskCacheMode.DirectSync => "directsync",
            _ => "unsafe",
        });
        if (disk.Discard == DiscardMode.Unmap)
        {
            w.WriteAttributeString("discard", "unmap");
        }

        w.WriteEndElement();

        w.WriteStartElement("source");
        switch (device.Source)
        {
            case FileDiskSource file:
                w.WriteAttributeString("file", file.Path);
                break;
            case BlockDiskSource block:
                w.WriteAttributeString("dev", block.DevicePath);
                break;
            case RbdDiskSource rbd:
                w.WriteAttributeString("protocol", "rbd");
                w.WriteAttributeString("name", rbd.Pool + "/" + rbd.Image);
                foreach (var monitor in rbd.Monitors)
                {
                    w.WriteStartElement("host");
                    w.WriteAttributeString("name", monitor.Host);
                    w.WriteAttributeString("port", Text(monitor.Port));
                    w.WriteEndElement();
                }

                if (rbd.AuthUsername is not null)
                {
                    w.WriteStartElement("auth");
                    w.WriteAttributeString("username", rbd.AuthUsername);
                    w.WriteStartElement("secret");
                    w.WriteAttributeString("type", "ceph");
                    w.WriteAttributeString("uuid", rbd.SecretUuid!.Value.ToString());
                    w.WriteEndElement();
                    w.WriteEndElement();
                }

                break;
        }

        w.WriteEndElement();

        w.WriteStartElement("target");
        w.WriteAttributeString("dev", disk.Target);
        w.WriteAttributeString("bus", disk.Bus switch
        {
            DiskBus.Virtio => "virtio",
            DiskBus.Scsi => "scsi",
            DiskBus.Ide => "ide",
            DiskBus.Sata => "sata",
            _ => "usb",
        });
        w.WriteEndElement();

        if (!disk.IoTune.IsEmpty)
        {
            var t = disk.IoTune;
            w.WriteStartElement("iotune");
            Optional("total_bytes_sec", t.TotalBytesSec);
            Optional("read_bytes_sec", t.ReadBytesSec);
            Optional("write_bytes_sec", t.WriteBytesSec);
            Optional("total_iops_sec", t.TotalIopsSec);
            Optional("read_iops_sec", t.ReadIopsSec);
            Optional("write_iops_sec", t.WriteIopsSec);
            w.WriteEndElement();
        }

        if (device.ReadOnly || disk.DeviceType == DiskDeviceType.Cdrom)
        {
            w.WriteStartElement("readonly");
            w.WriteEndElement();
        }

        if (device.Serial is not null)
        {
            w.WriteElementString("serial", device.Serial);
        }

        if (disk.BootOrder is { } order)
        {
            w.WriteStartElement("boot");
            w.WriteAttributeString("order", Text(order));
            w.WriteEndElement();
        }

        w.WriteEndElement();

        void Optional(string name, long? value)
        {
            if (value is { } v)
            {
                w.WriteElementString(name, Text(v));
            }
        }
    }

    private static void WriteInterface(XmlWriter w, GuestInterface nic)
    {
        var port = nic.Port;
        w.WriteStartElement("interface");
        w.WriteAttributeString("type", port.VifType switch
        {
            VifType.Bridge or VifType.Ovs => "bridge",
            VifType.Ethernet => "ethernet",
            _ => "vhostuser",
        });

        w.WriteStartElement("mac");
        w.WriteAttributeString("address", port.MacAddress.ToLowerInvariant());
        w.WriteEndElement();

        switch (port.VifType)
        {
            case VifType.Bridge or VifType.Ovs:
                w.WriteStartElement("source");
                w.WriteAttributeString("bridge", port.BridgeName);
                w.WriteEndElement();
                break;
            case VifType.VhostUser:
                w.WriteStartElement("source");
                w.WriteAttributeString("type", "unix");
                w.WriteAttributeString("path", port.VhostUserSocketPath);
                w.WriteAttributeString("mode", port.VhostUserMode == VhostUserMode.Client ? "client" : "server");
                w.WriteEndElement();
                break;
        }

        if (port.VifType == VifType.Ovs)
        {
            w.WriteStartElement("virtualport");
            w.WriteAttributeString("type", "openvswitch");
            w.WriteStartElement("parameters");
            w.WriteAttributeString("interfaceid", port.Id);
            w.WriteEndElement();
            w.WriteEndElement();
        }

        if (port.VifType != VifType.VhostUser)
        {
            w.WriteStartElement("target");
            w.WriteAttributeString("dev", port.EffectiveDeviceName);
            w.WriteEndElement();
        }

        w.WriteStartElement("model");
        w.WriteAttributeString("type", nic.Model switch
        {
            VifModel.Virtio => "virtio",
            VifModel.E1000 => "e1000",
            VifModel.E1000e => "e1000e",
            VifModel.Rtl8139 => "rtl8139",
            VifModel.Ne2kPci => "ne2k_pci",
            _ => "pcnet",
        });
        w.WriteEndElement();

        if (port.Mtu is { } mtu)
        {
            w.WriteStartElement("mtu");
            w.WriteAttributeString("size", Text(mtu));
            w.WriteEndElement();
        }

        if (!nic.Bandwidth.IsEmpty)
        {
            w.WriteStartElement("bandwidth");
            Limit("inbound", nic.Bandwidth.Inbound);
            Limit("outbound", nic.Bandwidth.Outbound);
            w.WriteEndElement();
        }

        w.WriteEndElement();

        void Limit(string direction, BandwidthLimit? limit)
        {
            if (limit is null)
            {
                return;
            }

            w.WriteStartElement(direction);
            w.WriteAttributeString("average", Text(limit.Average));
            if (limit.Peak is { } peak)
            {
                w.WriteAttributeString("peak", Text(peak));
            }

            if (limit.Burst is { } burst)
            {
                w.WriteAttributeString("burst", Text(burst));
            }

            w.WriteEndElement();
        }
    }

    private static void WriteConsoles(XmlWriter w, GuestConfig c)
    {
        // Port 0 is both a pty (interactive console) and, through virtlogd, the per-instance log file.
        for (var port = 0; port < c.SerialPortCount; port++)
        {
            w.WriteStartElement("serial");
            w.WriteAttributeString("type", "pty");
            if (port == 0)
            {
                w.WriteStartElement("log");
                w.WriteAttributeString("file", c.Host.ConsoleLogPath(c.Spec.Uuid));
                w.WriteAttributeString("append", "on");
                w.WriteEndElement();
            }

            w.WriteStartElement("target");
            w.WriteAttributeString("port", Text(port));
            w.WriteEndElement();
            w.WriteEndElement();
        }

        w.WriteStartElement("console");
        w.WriteAttributeString("type", "pty");
        w.WriteStartElement("target");
        w.WriteAttributeString("type", "serial");
        w.WriteAttributeString("port", "0");
        w.WriteEndElement();
        w.WriteEndElement();
    }

    private static void WriteOtherDevices(XmlWriter w, GuestConfig c)
    {
        if (c.GuestAgent)
        {
            // No path: libvirt creates the socket under its own channel directory.
            w.WriteStartElement("channel");
            w.WriteAttributeString("type", "unix");
            w.WriteStartElement("source");
            w.WriteAttributeString("mode", "bind");
            w.WriteEndElement();
            w.WriteStartElement("target");
            w.WriteAttributeString("type", "virtio");
            w.WriteAttributeString("name", GuestAgentChannel);
            w.WriteEndElement();
            w.WriteEndElement();
        }

        if (c.Pointer == PointerModel.UsbTablet)
        {
            w.WriteStartElement("input");
            w.WriteAttributeString("type", "tablet");
            w.WriteAttributeString("bus", "usb");
            w.WriteEndElement();
        }

        // VNC on loopback only: the console proxy on this host is the one way in.
        w.WriteStartElement("graphics");
        w.WriteAttributeString("type", "vnc");
        w.WriteAttributeString("autoport", "yes");
        w.WriteAttributeString("listen", "127.0.0.1");
        w.WriteStartElement("listen");
        w.WriteAttributeString("type", "address");
        w.WriteAttributeString("address", "127.0.0.1");
        w.WriteEndElement();
        w.WriteEndElement();

        w.WriteStartElement("video");
        w.WriteStartElement("model");
        w.WriteAttributeString("type", c.Video switch
        {
            VideoModel.Vga => "vga",
            VideoModel.Cirrus => "cirrus",
            VideoModel.Virtio => "virtio",
            VideoModel.Qxl => "qxl",
            _ => "none",
        });
        if (c.VideoRamMiB is { } videoRam)
        {
            w.WriteAttributeString("vram", Text(videoRam * 1024L));
        }

        w.WriteEndElement();
        w.WriteEndElement();

        if (c.Watchdog != WatchdogAction.Disabled)
        {
            w.WriteStartElement("watchdog");
            w.WriteAttributeString("model", "i6300esb");
            w.WriteAttributeString("action", c.Watchdog switch
            {
                WatchdogAction.Pause => "pause",
                WatchdogAction.Poweroff => "poweroff",
                WatchdogAction.Reset => "reset",
                _ => "none",
            });
            w.WriteEndElement();
        }

        if (c.Rng)
        {
            w.WriteStartElement("rng");
            w.WriteAttributeString("model", "virtio");
            if (c.FlavorSpecs.RngRateBytes is { } bytes)
            {
                w.WriteStartElement("rate");
                w.WriteAttributeString("bytes", Text(bytes));
                if (c.FlavorSpecs.RngRatePeriodMs is { } period)
                {
                    w.WriteAttributeString("period", Text(period));
                }

                w.WriteEndElement();
            }

            w.WriteStartElement("backend");
            w.WriteAttributeString("model", "random");
            w.WriteString(c.Host.RngSourcePath);
            w.WriteEndElement();
            w.WriteEndElement();
        }

        w.WriteStartElement("memballoon");
        w.WriteAttributeString("model", "virtio");
        w.WriteStartElement("stats");
        w.WriteAttributeString("period", "10");
        w.WriteEndElement();
        w.WriteEndElement();
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}
