using ComputeAgent.Instances.ConfigDrive;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.Store;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Libvirt;
using static ComputeAgent.Instances.StateModel.InstanceCommand;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// What each command does to libvirt (design.md §3, as Nova's libvirt driver does it). Knows
/// nothing of vm_state or the store: the engine decides, records and publishes; this acts.
/// libvirt calls block, so each runs on the thread pool.
/// </summary>
public sealed class InstanceDriver
{
    /// <summary>Journal keys of what a spawn has created, in creation order.</summary>
    public const string JournalInstanceDirectory = "instance_dir";
    public const string JournalRootDisk = "root_disk";
    public const string JournalDomain = "domain";
    public const string JournalConfigDrive = "config_drive";

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private readonly LibvirtSession session;
    private readonly DomainXmlBuilder builder;
    private readonly EngineOptions options;

    public InstanceDriver(LibvirtSession session, DomainXmlBuilder builder, EngineOptions options)
    {
        this.session = session ?? throw new ArgumentNullException(nameof(session));
        this.builder = builder ?? throw new ArgumentNullException(nameof(builder));
        this.options = options ?? throw new ArgumentNullException(nameof(options));
        ConfigDrive = new ConfigDriveBuilder(builder.Host.ConfigDriveFormat);
    }

    /// <summary>Writes an instance's config drive (spawn; a rebuild calls it again with the new spec).</summary>
    public ConfigDriveBuilder ConfigDrive { get; }

    public HostSettings Host => builder.Host;

    /// <summary>The commands this driver carries out; the engine refuses the others as not supported, changing nothing.</summary>
    public static bool Supports(InstanceCommand command) => command is Spawn or Pause or Unpause or Suspend or Resume
        or Start or Stop or RebootSoft or RebootHard or Delete or ForceDelete
        or Rescue or Unrescue or Resize or ConfirmResize or RevertResize;

    /// <summary>Journal keys of rescue and resize.</summary>
    public const string JournalRescueDisk = "rescue_disk";
    public const string JournalPreResizeDisk = "pre_resize_disk";

    public string InstanceDirectory(Guid uuid) => Path.Combine(Host.InstancesDirectory, uuid.ToString());

    public string RootDiskPath(Guid uuid) => Path.Combine(InstanceDirectory(uuid), "disk");

    /// <summary>The instance's power_state as libvirt shows it now (NoState when it has no domain).</summary>
    public Task<PowerState> ReadPowerStateAsync(Guid uuid, CancellationToken cancellationToken) =>
        WithConnectionAsync(c =>
        {
            using var domain = c.TryLookupByUuid(uuid);
            return PowerStateMapping.FromLibvirt(domain?.GetState());
        }, cancellationToken);

    /// <summary>power_state of every domain, in one bulk call (the reconcile loop's only libvirt call).</summary>
    public Task<Dictionary<Guid, PowerState>> ReadAllPowerStatesAsync(CancellationToken cancellationToken) =>
        WithConnectionAsync(c => c.GetAllDomainStats(DomainStatsTypes.State).ToDictionary(s => s.Uuid, s => PowerStateMapping.FromLibvirt(s.State)), cancellationToken);

    public Task ExecuteAsync(InstanceCommand command, TaskRun run, Func<CancellationToken, Task<string>>? baseImage, CancellationToken cancellationToken) => command switch
    {
        Spawn => SpawnAsync(run, baseImage ?? throw new ArgumentNullException(nameof(baseImage)), cancellationToken),
        Pause => OnDomainAsync(run.Uuid, d =>
        {
            // Pause from STOPPED: boot it paused, as Nova does.
            if (d.IsActive)
            {
                d.Suspend();
            }
            else
            {
                d.Create(DomainCreateFlags.StartPaused);
            }
        }, cancellationToken),
        Unpause => OnDomainAsync(run.Uuid, d => d.Resume(), cancellationToken),
        Suspend => OnDomainAsync(run.Uuid, d =>
        {
            // A stopped guest has no memory to save: start it paused, then save that.
            if (!d.IsActive)
            {
                d.Create(DomainCreateFlags.StartPaused);
            }

            d.ManagedSave();
        }, cancellationToken),
        Resume or Start => OnDomainAsync(run.Uuid, d => d.Create(), cancellationToken),
        Stop => StopAsync(run.Uuid, cancellationToken),
        RebootSoft => RebootSoftAsync(run.Uuid, cancellationToken),
        RebootHard => OnDomainAsync(run.Uuid, d =>
        {
            if (d.IsActive)
            {
                d.Destroy();
            }

            d.Create();
        }, cancellationToken),
        Delete or ForceDelete => DeleteAsync(run.Uuid, cancellationToken),
        Rescue => RescueAsync(run, cancellationToken),
        Unrescue => UnrescueAsync(run, cancellationToken),
        Resize => ResizeAsync(run, cancellationToken),
        ConfirmResize => ConfirmResizeAsync(run.Record, cancellationToken),
        RevertResize => RevertResizeAsync(run, cancellationToken),
        _ => throw new CommandNotSupportedException($"{command.ToDisplayName()} is not implemented by this agent yet"),
    };

    /// <summary>Removes whatever a spawn or an instance left: the domain (with its managed-save image) and the instance directory.</summary>
    public async Task DeleteAsync(Guid uuid, CancellationToken cancellationToken)
    {
        await WithConnectionAsync(c =>
        {
            using var domain = c.TryLookupByUuid(uuid);
            if (domain is null)
            {
                return 0;
            }

            if (domain.IsActive)
            {
                domain.Destroy();
            }

            // NVRAM only where there is one (UEFI): drivers without NVRAM refuse the flag.
            var nvram = domain.GetXmlDesc(DomainXmlFlags.Inactive).Contains("<nvram", StringComparison.Ordinal) ? DomainUndefineFlags.Nvram : DomainUndefineFlags.None;
            domain.Undefine(DomainUndefineFlags.ManagedSave | DomainUndefineFlags.SnapshotsMetadata | nvram);
            return 0;
        }, cancellationToken).ConfigureAwait(false);

        var directory = InstanceDirectory(uuid);
        if (Directory.Exists(directory))
        {
            await Task.Run(() => Directory.Delete(directory, recursive: true), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The spec with its root disk where this host keeps it: the overlay the spawn creates.</summary>
    public InstanceSpec WithLocalRootDisk(InstanceSpec spec)
    {
        var root = new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(RootDiskPath(spec.Uuid), DiskFormat.Qcow2)) { BootIndex = 0 };
        return spec with { BlockDevices = [root, .. spec.BlockDevices.Where(b => b.Role != BlockDeviceRole.Root)] };
    }

    /// <summary>
    /// The spec with a config drive device when one is wanted: the caller asked, the image's
    /// img_config_drive is mandatory, or the host forces one (Nova's required_by).
    /// </summary>
    public InstanceSpec WithConfigDrive(InstanceSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var wanted = spec.Guest.ConfigDrive || Host.ForceConfigDrive
            || ImageProperties.Parse(spec.Image.Properties).ConfigDrive == ConfigDriveRequirement.Mandatory;
        if (!wanted || spec.BlockDevices.Any(b => b.Role == BlockDeviceRole.ConfigDrive))
        {
            return spec;
        }

        var drive = BlockDevice.ConfigDrive(ConfigDriveBuilder.PathIn(InstanceDirectory(spec.Uuid)), ConfigDrive.Format);
        return spec with { BlockDevices = [.. spec.BlockDevices, drive] };
    }

    private async Task SpawnAsync(TaskRun run, Func<CancellationToken, Task<string>> baseImage, CancellationToken cancellationToken)
    {
        var spec = run.Spec;

        // Ports become <interface> elements in the XML; binding them is the controller's job today.
        await run.AdvanceAsync(TaskState.Networking, cancellationToken).ConfigureAwait(false);

        await run.AdvanceAsync(TaskState.BlockDeviceMapping, cancellationToken).ConfigureAwait(false);
        var image = await baseImage(cancellationToken).ConfigureAwait(false);
        var directory = InstanceDirectory(spec.Uuid);
        Directory.CreateDirectory(directory);
        await run.JournalAsync(JournalInstanceDirectory, directory, cancellationToken).ConfigureAwait(false);
        var root = RootDiskPath(spec.Uuid);
        long? rootSize = spec.Flavor.RootGiB > 0 ? spec.Flavor.RootGiB * 1024L * 1024 * 1024 : null;
        await QemuImg.CreateOverlayAsync(image, "qcow2", root, rootSize, cancellationToken).ConfigureAwait(false);
        await run.JournalAsync(JournalRootDisk, root, cancellationToken).ConfigureAwait(false);
        if (spec.BlockDevices.Any(b => b.Role == BlockDeviceRole.ConfigDrive))
        {
            var drive = await ConfigDrive.BuildAsync(spec, directory, cancellationToken).ConfigureAwait(false);
            await run.JournalAsync(JournalConfigDrive, drive, cancellationToken).ConfigureAwait(false);
        }

        await run.AdvanceAsync(TaskState.Spawning, cancellationToken).ConfigureAwait(false);
        var xml = builder.Build(spec);
        await WithConnectionAsync(c =>
        {
            using var domain = c.DefineXml(xml);
            return 0;
        }, cancellationToken).ConfigureAwait(false);
        await run.JournalAsync(JournalDomain, HostSettings.DomainName(spec.Uuid), cancellationToken).ConfigureAwait(false);
        await OnDomainAsync(spec.Uuid, d => d.Create(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Rescue (Nova's libvirt driver): keep the original domain XML, boot a rescue disk (a fresh
    /// overlay of the instance's own base image) with the original root disk attached second.
    /// </summary>
    private async Task RescueAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var uuid = run.Uuid;
        run.SavedDomainXml = await OnDomainAsync(uuid, d => d.GetXmlDesc(DomainXmlFlags.Inactive), cancellationToken).ConfigureAwait(false);
        var root = RootDiskPath(uuid);
        var info = QemuImageInfo.Parse(await QemuImg.InfoJsonAsync(root, cancellationToken).ConfigureAwait(false));
        var baseImage = info.BackingFile ?? throw new InvalidOperationException($"the root disk {root} has no base image to rescue from");
        var rescueDisk = Path.Combine(InstanceDirectory(uuid), "disk.rescue");
        await QemuImg.CreateOverlayAsync(baseImage, "qcow2", rescueDisk, null, cancellationToken).ConfigureAwait(false);
        await run.JournalAsync(JournalRescueDisk, rescueDisk, cancellationToken).ConfigureAwait(false);
        var rescueSpec = run.Spec with
        {
            BlockDevices =
            [
                new BlockDevice(BlockDeviceRole.Root, new FileDiskSource(rescueDisk, DiskFormat.Qcow2)) { BootIndex = 0 },
                new BlockDevice(BlockDeviceRole.Volume, new FileDiskSource(root, DiskFormat.Qcow2)),
                .. run.Spec.BlockDevices.Where(b => b.Role != BlockDeviceRole.Root),
            ],
        };
        var xml = builder.Build(rescueSpec);
        await RedefineAsync(uuid, xml, start: true, cancellationToken).ConfigureAwait(false);
    }

    private async Task UnrescueAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var original = run.Record.PreRescueXml ?? throw new InvalidOperationException("the instance has no saved pre-rescue domain XML");
        await RedefineAsync(run.Uuid, original, start: true, cancellationToken).ConfigureAwait(false);
        File.Delete(Path.Combine(InstanceDirectory(run.Uuid), "disk.rescue"));
        await run.JournalAsync(JournalRescueDisk, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Resize on this host: set the disk aside, power off, grow the overlay (never shrink), redefine, start if it ran.</summary>
    private async Task ResizeAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var uuid = run.Uuid;
        var newSpec = run.NewSpec ?? throw new InvalidOperationException("resize needs the new flavor");
        var wasRunning = await ReadPowerStateAsync(uuid, cancellationToken).ConfigureAwait(false) is PowerState.Running or PowerState.Paused;
        var root = RootDiskPath(uuid);
        var saved = Path.Combine(InstanceDirectory(uuid), "disk.pre-resize");

        await run.AdvanceAsync(TaskState.ResizeMigrating, cancellationToken).ConfigureAwait(false);
        await StopAsync(uuid, cancellationToken).ConfigureAwait(false);
        File.Copy(root, saved, overwrite: true);
        await run.JournalAsync(JournalPreResizeDisk, saved, cancellationToken).ConfigureAwait(false);

        await run.AdvanceAsync(TaskState.ResizeMigrated, cancellationToken).ConfigureAwait(false);
        if (newSpec.Flavor.RootGiB > run.Spec.Flavor.RootGiB)
        {
            await QemuImg.ResizeAsync(root, newSpec.Flavor.RootGiB * 1024L * 1024 * 1024, cancellationToken).ConfigureAwait(false);
        }

        await run.AdvanceAsync(TaskState.ResizeFinish, cancellationToken).ConfigureAwait(false);
        await RedefineAsync(uuid, builder.Build(newSpec), wasRunning, cancellationToken).ConfigureAwait(false);
        run.SavedFiles = new Dictionary<string, string>(StringComparer.Ordinal) { ["disk"] = saved };
    }

    /// <summary>Confirm: the new size stays; what was set aside for a revert goes.</summary>
    public static Task ConfirmResizeAsync(InstanceRecord record, CancellationToken cancellationToken)
    {
        foreach (var file in record.PreResize?.SavedFiles.Values ?? [])
        {
            File.Delete(file);
        }

        return Task.CompletedTask;
    }

    /// <summary>Revert: the old disk and the old flavor back, running again if it ran before the resize.</summary>
    private async Task RevertResizeAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var previous = run.Record.PreResize ?? throw new InvalidOperationException("the instance has no pending resize to revert");
        await StopAsync(run.Uuid, cancellationToken).ConfigureAwait(false);
        if (previous.SavedFiles.TryGetValue("disk", out var saved))
        {
            File.Move(saved, RootDiskPath(run.Uuid), overwrite: true);
        }

        var start = run.Record.VmStateBeforeTask == VmState.Active;
        await RedefineAsync(run.Uuid, builder.Build(previous.Spec), start, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Undoes an interrupted rescue or resize (recovery at start): the domain from the spec the
    /// record still holds, the disk a resize set aside put back, the rescue disk removed.
    /// </summary>
    public async Task RollBackAsync(InstanceRecord record, IReadOnlyDictionary<string, string> created, bool start, CancellationToken cancellationToken)
    {
        if (created.TryGetValue(JournalPreResizeDisk, out var saved) && File.Exists(saved))
        {
            await StopAsync(record.Uuid, cancellationToken).ConfigureAwait(false);
            File.Move(saved, RootDiskPath(record.Uuid), overwrite: true);
        }

        await RedefineAsync(record.Uuid, builder.Build(record.Spec), start, cancellationToken).ConfigureAwait(false);
        if (created.TryGetValue(JournalRescueDisk, out var rescue))
        {
            File.Delete(rescue);
        }
    }

    /// <summary>Finishes an interrupted unrescue: the original domain back and running, the rescue disk gone.</summary>
    public async Task FinishUnrescueAsync(Guid uuid, string originalXml, CancellationToken cancellationToken)
    {
        await RedefineAsync(uuid, originalXml, start: true, cancellationToken).ConfigureAwait(false);
        File.Delete(Path.Combine(InstanceDirectory(uuid), "disk.rescue"));
    }

    /// <summary>Replaces the persistent definition (same UUID and name) with <paramref name="xml"/>, destroying the running guest first.</summary>
    private Task<int> RedefineAsync(Guid uuid, string xml, bool start, CancellationToken cancellationToken) =>
        WithConnectionAsync(c =>
        {
            using (var current = c.TryLookupByUuid(uuid))
            {
                if (current is { IsActive: true })
                {
                    current.Destroy();
                }
            }

            using var domain = c.DefineXml(xml);
            if (start)
            {
                domain.Create();
            }

            return 0;
        }, cancellationToken);

    private async Task StopAsync(Guid uuid, CancellationToken cancellationToken)
    {
        if (!await ShutdownGracefullyAsync(uuid, cancellationToken).ConfigureAwait(false))
        {
            await OnDomainAsync(uuid, d =>
            {
                if (d.IsActive)
                {
                    d.Destroy();
                }
            }, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task RebootSoftAsync(Guid uuid, CancellationToken cancellationToken)
    {
        // Soft: ACPI shutdown and boot again; a guest that ignores the button is rebooted hard.
        if (!await ShutdownGracefullyAsync(uuid, cancellationToken).ConfigureAwait(false))
        {
            await OnDomainAsync(uuid, d =>
            {
                if (d.IsActive)
                {
                    d.Destroy();
                }
            }, cancellationToken).ConfigureAwait(false);
        }

        await OnDomainAsync(uuid, d => d.Create(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Presses the ACPI power button and waits for shut-off; false when the guest did not stop within the timeout.</summary>
    private async Task<bool> ShutdownGracefullyAsync(Guid uuid, CancellationToken cancellationToken)
    {
        var active = await OnDomainAsync(uuid, d =>
        {
            if (!d.IsActive)
            {
                return false;
            }

            // A paused guest cannot see the button: run it first.
            if (d.GetState().State == DomainState.Paused)
            {
                d.Resume();
            }

            d.Shutdown();
            return true;
        }, cancellationToken).ConfigureAwait(false);
        if (!active)
        {
            return true;
        }

        var deadline = DateTime.UtcNow + options.GracefulStopTimeout;
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
            if (await ReadPowerStateAsync(uuid, cancellationToken).ConfigureAwait(false) is PowerState.Shutdown or PowerState.NoState)
            {
                return true;
            }
        }

        return false;
    }

    private Task<int> OnDomainAsync(Guid uuid, Action<LibvirtDomain> action, CancellationToken cancellationToken) =>
        OnDomainAsync(uuid, d =>
        {
            action(d);
            return 0;
        }, cancellationToken);

    private Task<T> OnDomainAsync<T>(Guid uuid, Func<LibvirtDomain, T> action, CancellationToken cancellationToken) =>
        WithConnectionAsync(c =>
        {
            using var domain = c.LookupByUuid(uuid);
            return action(domain);
        }, cancellationToken);

    private async Task<T> WithConnectionAsync<T>(Func<LibvirtConnection, T> call, CancellationToken cancellationToken)
    {
        var connection = await session.GetConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Run(() => call(connection), cancellationToken).ConfigureAwait(false);
        }
        catch (LibvirtException ex) when (ex.IsConnectionLost)
        {
            session.ReportConnectionLost(connection);
            throw;
        }
    }
}
