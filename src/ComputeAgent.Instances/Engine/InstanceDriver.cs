using ComputeAgent.Instances.ConfigDrive;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
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
    public static bool Supports(InstanceCommand command) => Enum.IsDefined(command);

    /// <summary>Journal keys of rescue and resize.</summary>
    public const string JournalRescueDisk = "rescue_disk";
    public const string JournalPreResizeDisk = "pre_resize_disk";

    /// <summary>Journal keys of rebuild: the new root overlay before it replaces the old, the old one set aside.</summary>
    public const string JournalRebuildDisk = "rebuild_disk";
    public const string JournalPreRebuildDisk = "pre_rebuild_disk";

    /// <summary>Journal keys of snapshot and backup: the block-copy target of a live snapshot, the flattened image.</summary>
    public const string JournalSnapshotDelta = "snapshot_delta";
    public const string JournalSnapshotImage = "snapshot_image";
    public const string JournalSnapshotQueuedImage = "snapshot_queued_image";

    /// <summary>The account set-admin-password changes when the caller names none (Nova's default for Linux guests).</summary>
    public const string DefaultAdminUser = "root";

    public string InstanceDirectory(Guid uuid) => Path.Combine(Host.InstancesDirectory, uuid.ToString());

    public string RootDiskPath(Guid uuid) => Path.Combine(InstanceDirectory(uuid), "disk");

    /// <summary>The instance's power_state as libvirt shows it now (NoState when it has no domain).</summary>
    public Task<PowerState> ReadPowerStateAsync(Guid uuid, CancellationToken cancellationToken) =>
        WithConnectionAsync(c =>
        {
            using var domain = c.TryLookupByUuid(uuid);
            return PowerStateMapping.FromLibvirt(domain?.GetState());
        }, cancellationToken);

    /// <summary>
    /// The domain XML libvirt holds for the instance now (live, or with <paramref name="inactive"/>
    /// the persistent definition) and whether the domain is running; null when it has no domain.
    /// </summary>
    public Task<(string Xml, bool Active)?> ReadDomainXmlAsync(Guid uuid, bool inactive, CancellationToken cancellationToken) =>
        WithConnectionAsync<(string, bool)?>(c =>
        {
            using var domain = c.TryLookupByUuid(uuid);
            return domain is null ? null : (domain.GetXmlDesc(inactive ? DomainXmlFlags.Inactive : DomainXmlFlags.None), domain.IsActive);
        }, cancellationToken);

    /// <summary>
    /// Opens the guest's serial console (the caller disposes it); null when the instance has no
    /// domain or its domain is not running (shut off, paused, crashed). <paramref name="force"/>
    /// takes the console from whoever holds it, inside the agent or not (`virsh console`).
    /// </summary>
    public Task<DomainConsole?> OpenConsoleAsync(Guid uuid, bool force, CancellationToken cancellationToken) =>
        WithConnectionAsync(c =>
        {
            using var domain = c.TryLookupByUuid(uuid);
            return domain is not null && domain.GetState().State == DomainState.Running ? DomainConsole.Open(c, domain, force) : null;
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
        Stop => StopAsync(run.Uuid, run.Input.GracefulStopTimeout, cancellationToken),
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
        SoftDelete => SoftDeleteAsync(run.Uuid, cancellationToken),
        Restore => StartIfStoppedAsync(run.Uuid, cancellationToken),
        Rebuild => RebuildAsync(run, cancellationToken),
        SetAdminPassword => OnDomainAsync(run.Uuid, d => d.SetUserPassword(
            string.IsNullOrEmpty(run.Input.User) ? DefaultAdminUser : run.Input.User,
            run.Input.AdminPassword ?? throw new InvalidOperationException("set admin password needs the password")), cancellationToken),
        Snapshot or Backup => SnapshotAsync(run, cancellationToken),
        _ => throw new CommandNotSupportedException($"{command.ToDisplayName()} is not implemented by this agent yet"),
    };

    /// <summary>Removes whatever a spawn or an instance left: the domain (with its managed-save image) and the instance directory.</summary>
    public async Task DeleteAsync(Guid uuid, CancellationToken cancellationToken)
    {
        await RemoveDomainAsync(uuid, cancellationToken).ConfigureAwait(false);
        var directory = InstanceDirectory(uuid);
        if (Directory.Exists(directory))
        {
            await Task.Run(() => Directory.Delete(directory, recursive: true), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Destroys (when running) and undefines the domain, with its managed-save image, snapshot metadata and NVRAM; nothing when there is none.</summary>
    public Task RemoveDomainAsync(Guid uuid, CancellationToken cancellationToken) =>
        WithConnectionAsync(c =>
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
        }, cancellationToken);

    /// <summary>Replaces the persistent definition only: a running guest keeps running as it is and takes the new definition at its next start.</summary>
    public Task DefinePersistentAsync(string xml, CancellationToken cancellationToken) =>
        WithConnectionAsync(c =>
        {
            using var domain = c.DefineXml(xml);
            return 0;
        }, cancellationToken);

    /// <summary>
    /// The spec with this admin password (null: none). Spawn and rebuild hand the password to the
    /// config drive only; the spec the store keeps has none (packaging/operations.md, "Files and permissions").
    /// </summary>
    public static InstanceSpec WithAdminPassword(InstanceSpec spec, string? password)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return spec with { Guest = spec.Guest with { AdminPassword = password } };
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
        await CheckRootDiskFitsAsync(image, spec, cancellationToken).ConfigureAwait(false);
        var directory = InstanceDirectory(spec.Uuid);
        Directory.CreateDirectory(directory);
        await run.JournalAsync(JournalInstanceDirectory, directory, cancellationToken).ConfigureAwait(false);
        var root = RootDiskPath(spec.Uuid);
        await QemuImg.CreateOverlayAsync(image, "qcow2", root, RootDiskBytes(spec.Flavor), cancellationToken).ConfigureAwait(false);
        await run.JournalAsync(JournalRootDisk, root, cancellationToken).ConfigureAwait(false);
        if (spec.BlockDevices.Any(b => b.Role == BlockDeviceRole.ConfigDrive))
        {
            var drive = await ConfigDrive.BuildAsync(WithAdminPassword(spec, run.Input.AdminPassword), directory, cancellationToken).ConfigureAwait(false);
            await run.JournalAsync(JournalConfigDrive, drive, cancellationToken).ConfigureAwait(false);
        }

        await run.AdvanceAsync(TaskState.Spawning, cancellationToken).ConfigureAwait(false);
        await DefinePersistentAsync(builder.Build(spec), cancellationToken).ConfigureAwait(false);
        await run.JournalAsync(JournalDomain, HostSettings.DomainName(spec.Uuid), cancellationToken).ConfigureAwait(false);
        await OnDomainAsync(spec.Uuid, d => d.Create(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The root overlay's size: the flavor's root disk, or (root_gib 0) the image's own size.</summary>
    private static long? RootDiskBytes(Flavor flavor) => flavor.RootGiB > 0 ? flavor.RootGiB * 1024L * 1024 * 1024 : null;

    /// <summary>
    /// Nova's verify_base_size, before anything is made from the image: qemu-img would make an
    /// overlay smaller than its base, cutting off the end of the guest's disk. Glance does not
    /// always know the virtual size; the cached base image does.
    /// </summary>
    private static async Task CheckRootDiskFitsAsync(string baseImage, InstanceSpec spec, CancellationToken cancellationToken)
    {
        if (spec.Flavor.RootGiB == 0)
        {
            return;
        }

        var info = QemuImageInfo.Parse(await QemuImg.InfoJsonAsync(baseImage, cancellationToken).ConfigureAwait(false));
        FlavorDiskSmallerThanImageException.ThrowIfLarger(spec.Flavor, spec.Image.Id, info.VirtualSize, "virtual size");
    }

    /// <summary>
    /// Rescue (Nova's libvirt driver): keep the original domain XML, boot a rescue disk (a fresh
    /// overlay of the instance's own base image, or of the rescue image the caller named) with the
    /// original root disk attached second.
    /// </summary>
    private async Task RescueAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var uuid = run.Uuid;
        run.SavedDomainXml = await OnDomainAsync(uuid, d => d.GetXmlDesc(DomainXmlFlags.Inactive), cancellationToken).ConfigureAwait(false);
        var root = RootDiskPath(uuid);
        var info = QemuImageInfo.Parse(await QemuImg.InfoJsonAsync(root, cancellationToken).ConfigureAwait(false));
        var baseImage = run.Input.BaseImage is { } rescueImage
            ? await rescueImage(cancellationToken).ConfigureAwait(false)
            : info.BackingFile ?? throw new InvalidOperationException($"the root disk {root} has no base image to rescue from");
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

        // A root_gib 0 instance's disk is the image's size: a root disk below it would be a shrink, which qemu-img refuses only once the guest is down.
        var current = QemuImageInfo.Parse(await QemuImg.InfoJsonAsync(root, cancellationToken).ConfigureAwait(false)).VirtualSize;
        FlavorDiskSmallerThanImageException.ThrowIfLarger(newSpec.Flavor, run.Spec.Image.Id, current, "virtual size (the instance's root disk now)");

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

    /// <summary>
    /// Rebuild (Nova's libvirt driver): a fresh overlay of the new image is made first (a fetch
    /// failure leaves the guest as it was), then the guest stops, the old root disk is set aside,
    /// the domain is defined from the new image's metadata and boots. The old disk goes only once
    /// the new guest runs, so a failed rebuild still has it for recovery.
    /// </summary>
    private async Task RebuildAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var uuid = run.Uuid;
        var newSpec = run.NewSpec ?? throw new InvalidOperationException("rebuild needs the new image");
        var baseImage = run.Input.BaseImage ?? throw new InvalidOperationException("rebuild needs the new image's data");
        var image = await baseImage(cancellationToken).ConfigureAwait(false);
        await CheckRootDiskFitsAsync(image, newSpec, cancellationToken).ConfigureAwait(false);
        var fresh = Path.Combine(InstanceDirectory(uuid), "disk.rebuild");
        var old = Path.Combine(InstanceDirectory(uuid), "disk.pre-rebuild");
        await run.JournalAsync(JournalRebuildDisk, fresh, cancellationToken).ConfigureAwait(false);
        await QemuImg.CreateOverlayAsync(image, "qcow2", fresh, RootDiskBytes(newSpec.Flavor), cancellationToken).ConfigureAwait(false);
        await StopAsync(uuid, cancellationToken).ConfigureAwait(false);

        await run.AdvanceAsync(TaskState.RebuildSpawning, cancellationToken).ConfigureAwait(false);

        // As Nova does: the config drive is written again (the new image may ask for one; its
        // contents are the instance's own), replacing the old one only once the new one is built.
        if (newSpec.BlockDevices.Any(b => b.Role == BlockDeviceRole.ConfigDrive))
        {
            await ConfigDrive.BuildAsync(WithAdminPassword(newSpec, run.Input.AdminPassword), InstanceDirectory(uuid), cancellationToken).ConfigureAwait(false);
        }

        var root = RootDiskPath(uuid);
        await run.JournalAsync(JournalPreRebuildDisk, old, cancellationToken).ConfigureAwait(false);
        File.Move(root, old, overwrite: true);
        File.Move(fresh, root);
        await run.JournalAsync(JournalRebuildDisk, null, cancellationToken).ConfigureAwait(false);
        try
        {
            await RedefineAsync(uuid, builder.Build(newSpec), start: true, cancellationToken).ConfigureAwait(false);
        }
        catch (LibvirtException ex)
        {
            throw new RebuildFailedException($"the rebuilt guest did not start ({ex.LibvirtMessage}); the old root disk is kept at {old}", ex);
        }

        File.Delete(old);
        await run.JournalAsync(JournalPreRebuildDisk, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Snapshot and backup: a consistent standalone qcow2 of the root disk, uploaded to the image
    /// service. A running guest keeps running: its disk is mirrored (a shallow block copy onto a
    /// fresh overlay of the same base, as Nova's live snapshot does), with the file systems frozen
    /// through the guest agent around the moment the copy is cut when the image declares one; a
    /// stopped guest's overlay is read directly. Either way qemu-img flattens the result.
    /// </summary>
    private async Task SnapshotAsync(TaskRun run, CancellationToken cancellationToken)
    {
        var uuid = run.Uuid;
        var target = run.Input.Upload ?? throw new InvalidOperationException("a snapshot needs an image to upload to");
        var directory = InstanceDirectory(uuid);
        var root = RootDiskPath(uuid);
        var flat = Path.Combine(directory, "snapshot.qcow2");
        try
        {
            if (target.CreatedImageId is { } queued)
            {
                await run.JournalAsync(JournalSnapshotQueuedImage, queued, cancellationToken).ConfigureAwait(false);
            }

            await run.JournalAsync(JournalSnapshotImage, flat, cancellationToken).ConfigureAwait(false);
            if (await ReadPowerStateAsync(uuid, cancellationToken).ConfigureAwait(false) is PowerState.Running or PowerState.Paused)
            {
                var delta = Path.Combine(directory, "snapshot.delta");
                await run.JournalAsync(JournalSnapshotDelta, delta, cancellationToken).ConfigureAwait(false);
                await LiveCopyAsync(run, root, delta, cancellationToken).ConfigureAwait(false);
                await QemuImg.ConvertAsync(delta, "qcow2", flat, "qcow2", cancellationToken).ConfigureAwait(false);
                File.Delete(delta);
                await run.JournalAsync(JournalSnapshotDelta, null, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await QemuImg.ConvertAsync(root, "qcow2", flat, "qcow2", cancellationToken).ConfigureAwait(false);
            }

            if (run.Plan.TaskStates.Contains(TaskState.ImagePendingUpload))
            {
                await run.AdvanceAsync(TaskState.ImagePendingUpload, cancellationToken).ConfigureAwait(false);
                await run.AdvanceAsync(TaskState.ImageUploading, cancellationToken).ConfigureAwait(false);
            }

            await target.UploadAsync(flat, cancellationToken).ConfigureAwait(false);
            if (target.CreatedImageId is not null)
            {
                // The image has its data: from here a stop must not make recovery delete it.
                await run.JournalAsync(JournalSnapshotQueuedImage, null, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // The image record will never get good data: remove it rather than leave a queued
            // image, as Nova does when a snapshot fails. A delete that preempted the snapshot too:
            // recovery could not do it later (the caller's token is not kept).
            await target.AbandonAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        finally
        {
            File.Delete(Path.Combine(directory, "snapshot.delta"));
            File.Delete(flat);
        }

        await run.JournalAsync(JournalSnapshotImage, null, cancellationToken).ConfigureAwait(false);
    }

    private static readonly TimeSpan BlockJobPoll = TimeSpan.FromMilliseconds(50);

    /// <summary>Mirrors the running guest's root disk into <paramref name="delta"/> (same base) and cuts the copy off once it is in step.</summary>
    private async Task LiveCopyAsync(TaskRun run, string root, string delta, CancellationToken cancellationToken)
    {
        var uuid = run.Uuid;
        var info = QemuImageInfo.Parse(await QemuImg.InfoJsonAsync(root, cancellationToken).ConfigureAwait(false));
        var backing = info.BackingFile ?? throw new InvalidOperationException($"the root disk {root} has no base image");
        await QemuImg.CreateOverlayAsync(backing, "qcow2", delta, info.VirtualSize, cancellationToken).ConfigureAwait(false);
        var device = await OnDomainAsync(uuid, d => DiskTarget(d.GetXmlDesc(), root), cancellationToken).ConfigureAwait(false);
        var destination = $"<disk type='file'><source file='{System.Security.SecurityElement.Escape(delta)}'/><driver type='qcow2'/></disk>";
        await OnDomainAsync(uuid, d => d.BlockCopy(device, destination, BlockCopyFlags.Shallow | BlockCopyFlags.ReuseExternal | BlockCopyFlags.TransientJob), cancellationToken).ConfigureAwait(false);
        var frozen = false;
        try
        {
            // Mirrored once the job has copied everything and follows every write.
            while (await OnDomainAsync(uuid, d => d.GetBlockJobInfo(device), cancellationToken).ConfigureAwait(false) is not { End: > 0 } job || job.Current != job.End)
            {
                await Task.Delay(BlockJobPoll, cancellationToken).ConfigureAwait(false);
            }

            if (ImageProperties.Parse(run.Spec.Image.Properties).QemuGuestAgent)
            {
                frozen = await OnDomainAsync(uuid, d => TryFreeze(d), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            // Aborting without pivot leaves the guest on its own disk and the copy as it was at this moment.
            await OnDomainAsync(uuid, d =>
            {
                if (d.GetBlockJobInfo(device) is not null)
                {
                    d.BlockJobAbort(device);
                }

                if (frozen)
                {
                    d.FsThaw();
                }
            }, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Quiescing is best effort (as Nova's without os_require_quiesce): a guest agent that does not answer leaves a crash-consistent copy.</summary>
    private static bool TryFreeze(LibvirtDomain domain)
    {
        try
        {
            return domain.FsFreeze() >= 0;
        }
        catch (LibvirtException)
        {
            return false;
        }
    }

    /// <summary>The target device (vda, sda…) of the disk whose source is <paramref name="path"/>.</summary>
    private static string DiskTarget(string domainXml, string path) =>
        FileDisks(domainXml).Where(d => d.File == path).Select(d => d.Target).FirstOrDefault(dev => dev is not null)
            ?? throw new InvalidOperationException($"the domain has no disk backed by {path}");

    /// <summary>The domain's file-backed disks: each source file with its target device (null when it has none).</summary>
    internal static IEnumerable<(string File, string? Target)> FileDisks(string domainXml) =>
        System.Xml.Linq.XDocument.Parse(domainXml).Descendants("disk")
            .Select(d => (File: (string?)d.Element("source")?.Attribute("file"), Target: (string?)d.Element("target")?.Attribute("dev")))
            .Where(d => d.File is not null)
            .Select(d => (d.File!, d.Target));

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
        foreach (var key in (string[])[JournalPreResizeDisk, JournalPreRebuildDisk])
        {
            if (created.TryGetValue(key, out var saved) && File.Exists(saved))
            {
                await StopAsync(record.Uuid, cancellationToken).ConfigureAwait(false);
                File.Move(saved, RootDiskPath(record.Uuid), overwrite: true);
            }
        }

        if (created.TryGetValue(JournalRebuildDisk, out var unused))
        {
            File.Delete(unused);
        }

        await RedefineAsync(record.Uuid, builder.Build(record.Spec), start, cancellationToken).ConfigureAwait(false);
        if (created.TryGetValue(JournalRescueDisk, out var rescue))
        {
            File.Delete(rescue);
        }
    }

    /// <summary>Finishes an interrupted soft delete (the guest off) or restore (the guest running); returns the power_state after.</summary>
    public async Task<PowerState> FinishAsync(InstanceCommand command, InstanceRecord record, CancellationToken cancellationToken)
    {
        // Each is what the command itself does, and harmless to repeat.
        await (command == SoftDelete ? SoftDeleteAsync(record.Uuid, cancellationToken) : StartIfStoppedAsync(record.Uuid, cancellationToken)).ConfigureAwait(false);
        return await ReadPowerStateAsync(record.Uuid, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>After an interrupted snapshot: the mirror job (if QEMU still runs it) cancelled, the temporary files removed.</summary>
    public async Task AbandonSnapshotAsync(Guid uuid, IReadOnlyDictionary<string, string> created, CancellationToken cancellationToken)
    {
        if (created.TryGetValue(JournalSnapshotDelta, out var delta))
        {
            await WithConnectionAsync(c =>
            {
                using var domain = c.TryLookupByUuid(uuid);
                if (domain is { IsActive: true })
                {
                    var device = DiskTarget(domain.GetXmlDesc(), RootDiskPath(uuid));
                    if (domain.GetBlockJobInfo(device) is not null)
                    {
                        domain.BlockJobAbort(device);
                    }
                }

                return 0;
            }, cancellationToken).ConfigureAwait(false);
            File.Delete(delta);
        }

        if (created.TryGetValue(JournalSnapshotImage, out var image))
        {
            File.Delete(image);
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

    /// <summary>Soft delete: the guest off and everything kept; an instance in ERROR may have no domain left to stop.</summary>
    private async Task SoftDeleteAsync(Guid uuid, CancellationToken cancellationToken)
    {
        if (await ReadPowerStateAsync(uuid, cancellationToken).ConfigureAwait(false) != PowerState.NoState)
        {
            await StopAsync(uuid, cancellationToken).ConfigureAwait(false);
        }
    }

    private Task StopAsync(Guid uuid, CancellationToken cancellationToken) => StopAsync(uuid, null, cancellationToken);

    private async Task StopAsync(Guid uuid, TimeSpan? gracefulTimeout, CancellationToken cancellationToken)
    {
        if (gracefulTimeout == TimeSpan.Zero || !await ShutdownGracefullyAsync(uuid, gracefulTimeout ?? options.GracefulStopTimeout, cancellationToken).ConfigureAwait(false))
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
        await StopAsync(uuid, cancellationToken).ConfigureAwait(false);
        await OnDomainAsync(uuid, d => d.Create(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Restore: the guest started unless it runs already (a start the agent was killed inside may
    /// still be under way in libvirtd when recovery repeats it).
    /// </summary>
    private Task<int> StartIfStoppedAsync(Guid uuid, CancellationToken cancellationToken) =>
        OnDomainAsync(uuid, d =>
        {
            if (!d.IsActive)
            {
                d.Create();
            }
        }, cancellationToken);

    /// <summary>Presses the ACPI power button and waits for shut-off; false when the guest did not stop within the timeout.</summary>
    private async Task<bool> ShutdownGracefullyAsync(Guid uuid, TimeSpan timeout, CancellationToken cancellationToken)
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

        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);

            // Not the power_state: libvirt's "being shut down" maps to SHUTDOWN too, while QEMU
            // still runs; a start, destroy or redefine then races its exit. Done means inactive.
            var stillActive = await WithConnectionAsync(c =>
            {
                using var domain = c.TryLookupByUuid(uuid);
                return domain is { IsActive: true };
            }, cancellationToken).ConfigureAwait(false);
            if (!stillActive)
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
