using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Logging;
using static ComputeAgent.Instances.StateModel.InstanceCommand;

namespace ComputeAgent.Instances.Engine;

public sealed partial class InstanceEngine
{
    /// <summary>
    /// Settles, before serving, every difference between the records and libvirt (issue 3 item 4):
    /// tasks a crash interrupted, domains of deleted or cleaned-up instances and definitions that
    /// disagree with their records (InstanceEngine.Fence.cs), records whose domain vanished, domains
    /// of ours with no record.
    /// </summary>
    private async Task RecoverAsync(CancellationToken cancellationToken)
    {
        var powers = await driver.ReadAllPowerStatesAsync(cancellationToken).ConfigureAwait(false);
        var interrupted = await store.ListJournalAsync(cancellationToken).ConfigureAwait(false);
        foreach (var entry in interrupted)
        {
            if (slots.TryGetValue(entry.Uuid, out var slot) && slot.Record is not null)
            {
                try
                {
                    await RecoverTaskAsync(slot, entry, powers, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is LibvirtException or IOException or UnauthorizedAccessException or InvalidOperationException or InvalidInstanceSpecException)
                {
                    // One instance that cannot be settled must not keep the agent from serving the
                    // others (a record the builder now refuses, too: it failed the whole start).
                    await FailRecoveryAsync(slot, entry, ex, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        // Before anything is synced or adopted: late calls of the stopped agent process are fenced.
        await LoadTombstonesAsync(cancellationToken).ConfigureAwait(false);
        await FenceAsync(powers, recovery: true, cancellationToken).ConfigureAwait(false);
        await SettleIdleAsync(powers, "recovery", "recovery: the domain is gone", cancellationToken).ConfigureAwait(false);

        foreach (var (uuid, power) in powers)
        {
            if (!slots.ContainsKey(uuid))
            {
                await AdoptAsync(uuid, power, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task RecoverTaskAsync(InstanceSlot slot, TaskJournalEntry entry, IReadOnlyDictionary<Guid, PowerState> powers, CancellationToken cancellationToken)
    {
        var record = slot.Record!;
        var power = powers.GetValueOrDefault(slot.Uuid, PowerState.NoState);
        var name = entry.Command.ToDisplayName();
        StateChange change;
        if (entry.Command == Spawn && power != PowerState.Running)
        {
            // design.md §2: a failed spawn leaves nothing behind.
            await driver.DeleteAsync(slot.Uuid, cancellationToken).ConfigureAwait(false);
            change = new StateChange(slot.Uuid, VmState.Error, TaskState.None, PowerState.NoState, "recovery: spawn interrupted")
            {
                Journal = JournalChange.Clear,
                Fault = new Fault("interrupted", $"the agent stopped while spawning (at {entry.Step.ToDisplayName()}); the partial domain and files were removed: delete the instance and spawn it again"),
            };
        }
        else if (entry.Command == Spawn)
        {
            change = new StateChange(slot.Uuid, VmState.Active, TaskState.None, power, "recovery: spawn had finished") { Journal = JournalChange.Clear };
        }
        else if (entry.Command is Delete or ForceDelete)
        {
            await driver.DeleteAsync(slot.Uuid, cancellationToken).ConfigureAwait(false);
            change = new StateChange(slot.Uuid, VmState.Deleted, TaskState.None, PowerState.NoState, "recovery: delete finished")
            {
                Journal = JournalChange.Clear,
                DeletedAt = new ColumnUpdate<DateTimeOffset?>(time.GetUtcNow()),
            };
        }
        else if (entry.Command is SoftDelete or Restore)
        {
            // Both are finished rather than undone: what the caller asked for is unambiguous and
            // repeating it is harmless (the guest off and kept, or the guest running again).
            var finished = await driver.FinishAsync(entry.Command, record, cancellationToken).ConfigureAwait(false);
            var vm = entry.Command == SoftDelete ? VmState.SoftDeleted : VmState.Active;
            change = new StateChange(slot.Uuid, vm, TaskState.None, finished, $"recovery: {name} finished")
            {
                Journal = JournalChange.Clear,
                Fault = new Fault("interrupted", $"the agent stopped during {name}; it was finished: the instance is {vm.ToDisplayName()}"),
            };
        }
        else if (entry.Command is Rescue or Resize or Rebuild)
        {
            // Rolled back from the journal: the record still holds the spec from before the task (rebuild: the old image),
            // so the domain is defined from it again, the disk set aside by a resize comes back,
            // the rescue disk goes, and the guest runs again if it ran before.
            var start = record.VmState is VmState.Active or VmState.Resized;
            await driver.RollBackAsync(record, entry.Created, start, cancellationToken).ConfigureAwait(false);
            var after = await driver.ReadPowerStateAsync(slot.Uuid, cancellationToken).ConfigureAwait(false);
            change = new StateChange(slot.Uuid, record.VmState, TaskState.None, after, $"recovery: {name} rolled back")
            {
                Journal = JournalChange.Clear,
                Fault = new Fault("interrupted", $"the agent stopped during {name} (at {entry.Step.ToDisplayName()}); it was rolled back: the instance is {record.VmState.ToDisplayName()} with its previous flavor and disk"),
            };
        }
        else if (entry.Command == Unrescue && record.PreRescueXml is { } original)
        {
            await driver.FinishUnrescueAsync(slot.Uuid, original, cancellationToken).ConfigureAwait(false);
            var after = await driver.ReadPowerStateAsync(slot.Uuid, cancellationToken).ConfigureAwait(false);
            change = new StateChange(slot.Uuid, VmState.Active, TaskState.None, after, "recovery: unrescue finished")
            {
                Journal = JournalChange.Clear,
                PreRescueXml = new ColumnUpdate<string?>(null),
                Fault = new Fault("interrupted", "the agent stopped during unrescue; it was finished: the original domain runs again"),
            };
        }
        else
        {
            var queuedImage = string.Empty;
            if (entry.Command is Snapshot or Backup)
            {
                await driver.AbandonSnapshotAsync(slot.Uuid, entry.Created, cancellationToken).ConfigureAwait(false);
                queuedImage = await AbandonQueuedImageAsync(slot.Uuid, entry, cancellationToken).ConfigureAwait(false);
            }

            // Whatever the task got to, the instance is now what libvirt shows, read as a power sync
            // from the vm_state the task started from.
            var vm = PowerSyncRules.Reconcile(record.VmState, power, options.RestartCrashedGuests);
            change = new StateChange(slot.Uuid, vm, TaskState.None, power, $"recovery: {name} interrupted")
            {
                Journal = JournalChange.Clear,
                VmStateBeforeTask = entry.Command == Pause && vm == VmState.Paused ? new ColumnUpdate<VmState?>(record.VmState) : default,
                Fault = new Fault("interrupted", $"the agent stopped during {name} (at {entry.Step.ToDisplayName()}); the instance is as libvirt shows it: {vm.ToDisplayName()} / {power.ToDisplayName()}{queuedImage}"),
            };
        }

        LogRecovered(logger, slot.Uuid, name, entry.Step.ToDisplayName(), change.VmState.ToDisplayName());
        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await CommitLockedAsync(slot, change, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>
    /// The image record the interrupted snapshot or backup had created (queued, never to get its
    /// data) deleted through the agent's own access to the image service, as a failed snapshot's
    /// is; what became of it, as the end of the fault's message.
    /// </summary>
    private async Task<string> AbandonQueuedImageAsync(Guid uuid, TaskJournalEntry entry, CancellationToken cancellationToken)
    {
        if (!entry.Created.TryGetValue(InstanceDriver.JournalSnapshotQueuedImage, out var imageId))
        {
            return string.Empty;
        }

        string why;
        if (imageService is null)
        {
            why = "no image service is configured (Agent:ImageServiceUrl)";
        }
        else
        {
            try
            {
                await imageService.DeleteImageAsync(imageId, cancellationToken).ConfigureAwait(false);
                return $"; its queued image {imageId} was deleted from the image service";
            }
            catch (ImageServiceException e)
            {
                why = e.Reason;
            }
        }

        LogQueuedImageLeft(logger, uuid, imageId, why);
        return $"; its queued image {imageId} could not be deleted ({why}): delete it with `openstack image delete {imageId}`";
    }

    private async Task FailRecoveryAsync(InstanceSlot slot, TaskJournalEntry entry, Exception error, CancellationToken cancellationToken)
    {
        var name = entry.Command.ToDisplayName();
        LogRecoveryFailed(logger, slot.Uuid, name, error);
        var power = PowerState.NoState;
        try
        {
            power = await driver.ReadPowerStateAsync(slot.Uuid, cancellationToken).ConfigureAwait(false);
        }
        catch (LibvirtException)
        {
        }

        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await CommitLockedAsync(slot, new StateChange(slot.Uuid, VmState.Error, TaskState.None, power, $"recovery: {name} could not be settled")
            {
                Journal = JournalChange.Clear,
                Fault = new Fault("recovery_failed", $"the agent stopped during {name} and could not settle it at start ({error.Message}); check the domain with virsh, then delete or rebuild the instance", error.ToString()),
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>A domain carrying the agent's metadata but no record (the database was lost or restored): take it back.</summary>
    private async Task AdoptAsync(Guid uuid, PowerState power, CancellationToken cancellationToken)
    {
        InstanceMetadata? metadata;
        string? xml;
        try
        {
            xml = (await driver.ReadDomainXmlAsync(uuid, inactive: true, cancellationToken).ConfigureAwait(false))?.Xml;
            metadata = xml is null ? null : InstanceMetadata.Parse(xml);
        }
        catch (LibvirtException ex) when (ex.Code == LibvirtErrorCode.NoDomain)
        {
            return; // gone between the listing and the look: nothing to adopt
        }
        catch (InvalidDataException ex)
        {
            LogUnreadableMetadata(logger, uuid, ex);
            return;
        }

        if (metadata is null || xml is null)
        {
            return; // not ours: other domains on the host are left alone
        }

        if (!DisksAreOurs(xml))
        {
            // Built by an agent with another instances folder (a second agent on a shared
            // libvirt, as parallel test runs have): its guest, not ours to take over.
            LogOtherAgents(logger, uuid);
            return;
        }

        var f = metadata.Flavor;
        var spec = new InstanceSpec
        {
            Uuid = uuid,
            Name = metadata.Name,
            Flavor = new Flavor(f.Name, f.Vcpus, f.RamMiB, f.RootGiB, f.EphemeralGiB, f.SwapGiB),
            Image = new ImageMeta(metadata.ImageId),
            Owner = metadata.Owner,
            CreatedAt = metadata.CreatedAt,
        };
        var vm = power switch
        {
            PowerState.Running => VmState.Active,
            PowerState.Paused => VmState.Paused,
            PowerState.Suspended => VmState.Suspended,
            PowerState.Shutdown => VmState.Stopped,
            _ => VmState.Error,
        };
        LogAdopted(logger, uuid, vm.ToDisplayName());
        var slot = StartSlot(new InstanceSlot(uuid, null));
        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await CommitLockedAsync(slot, new StateChange(uuid, vm, TaskState.None, power, "recovery: adopted from libvirt metadata")
            {
                Spec = driver.WithLocalRootDisk(spec),
                Fault = new Fault("adopted", "the agent had no record of this domain and rebuilt it from the domain's metadata"),
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>A domain with file disks is ours only if one of them is in this agent's instances folder.</summary>
    private bool DisksAreOurs(string domainXml)
    {
        var folder = driver.Host.InstancesDirectory.TrimEnd('/') + "/";
        var files = InstanceDriver.FileDisks(domainXml).Select(d => d.File).ToList();
        return files.Count == 0 || files.Any(f => f.StartsWith(folder, StringComparison.Ordinal));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Domain {InstanceUuid} carries agent metadata but its disks are outside this agent's instances folder; left to the agent that made it")]
    private static partial void LogOtherAgents(ILogger logger, Guid instanceUuid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceUuid}: {Command} was interrupted at {TaskState} by an agent stop; now {VmState}")]
    private static partial void LogRecovered(ILogger logger, Guid instanceUuid, string command, string taskState, string vmState);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceUuid}: the queued image {ImageId} of its interrupted snapshot could not be deleted ({Reason}); delete it with openstack image delete")]
    private static partial void LogQueuedImageLeft(ILogger logger, Guid instanceUuid, string imageId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Instance {InstanceUuid}: settling the interrupted {Command} failed; instance put in ERROR")]
    private static partial void LogRecoveryFailed(ILogger logger, Guid instanceUuid, string command, Exception error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Domain {InstanceUuid} carries agent metadata the agent cannot read; left alone")]
    private static partial void LogUnreadableMetadata(ILogger logger, Guid instanceUuid, Exception error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Instance {InstanceUuid}: a domain of ours with no record; adopted from its metadata as {VmState}")]
    private static partial void LogAdopted(ILogger logger, Guid instanceUuid, string vmState);
}
