using System.Collections.Concurrent;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// Fencing of late libvirt calls (issue 13 item 10). A killed agent's calls already sent to a slow
/// libvirtd still complete after the new agent has recovered: a spawn's define re-creates the
/// domain of an instance recovery cleaned up, a resize's define overwrites the definition recovery
/// rolled back. The records decide: a domain of an instance deleted or cleaned up is reaped
/// (Nova's running_deleted_instance_action=reap), never adopted, and a definition that disagrees
/// with its idle instance's record is defined again from the record.
/// </summary>
public sealed partial class InstanceEngine
{
    /// <summary>Instances deleted before this start (the store keeps their rows); those deleted since keep their slot.</summary>
    private readonly ConcurrentDictionary<Guid, byte> tombstones = new();

    private async Task LoadTombstonesAsync(CancellationToken cancellationToken)
    {
        foreach (var uuid in await store.ListDeletedUuidsAsync(cancellationToken).ConfigureAwait(false))
        {
            tombstones.TryAdd(uuid, 0);
        }
    }

    /// <summary>
    /// Reaps the domains in <paramref name="powers"/> that belong to deleted or cleaned-up instances
    /// and takes them out of it, so nothing adopts them or syncs them from a stale read. At recovery
    /// (<paramref name="recovery"/>) the work is done here and every idle instance's definition is
    /// checked against its record; in the reconcile pass an instance's check (and its power sync)
    /// waits in its queue behind its tasks.
    /// </summary>
    private async Task FenceAsync(Dictionary<Guid, PowerState> powers, bool recovery, CancellationToken cancellationToken)
    {
        foreach (var uuid in powers.Keys.ToList())
        {
            if (slots.TryGetValue(uuid, out var slot))
            {
                if (slot.Record is not { } record || !(recovery || MayBeFenced(record)))
                {
                    continue;
                }

                if (!recovery)
                {
                    // Its power_state too is settled in the queue, after the reaping: the bulk read is stale by then.
                    powers.Remove(uuid);
                    try
                    {
                        Enqueue(slot, () => SettleDomainAsync(slot, checkDefinition: false, cancellationToken));
                    }
                    catch (ObjectDisposedException) when (cancellationToken.IsCancellationRequested)
                    {
                        return;
                    }
                }
                else if (await SettleDomainAsync(slot, checkDefinition: true, cancellationToken).ConfigureAwait(false))
                {
                    powers.Remove(uuid);
                }
            }
            else if (tombstones.ContainsKey(uuid))
            {
                powers.Remove(uuid);
                await TryReapAsync(uuid, record: null, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The event pump's part: a domain defined or started is checked in its instance's queue
    /// (reaped if the instance is deleted or cleaned up, its definition compared with the record
    /// when it was defined); one of an instance deleted before this start waits for a reconcile pass.
    /// </summary>
    private void FenceOnEvent(Guid uuid, bool defined)
    {
        if (slots.TryGetValue(uuid, out var slot))
        {
            if (slot.Record is { } record && (defined || MayBeFenced(record)))
            {
                Enqueue(slot, () => SettleDomainAsync(slot, defined, stopping.Token));
            }
        }
        else if (tombstones.ContainsKey(uuid))
        {
            try
            {
                reconcileNow.Release();
            }
            catch (SemaphoreFullException)
            {
                // A pass is already asked for.
            }
        }
    }

    /// <summary>
    /// Deleted, or in ERROR with nothing in flight and no root disk (a spawn that failed or was
    /// interrupted ends so, cleaned up); an ERROR instance with its disk is synced as any other.
    /// </summary>
    private bool MayBeFenced(InstanceRecord record) =>
        record.DeletedAt is not null || (record is { VmState: VmState.Error, TaskState: TaskState.None } && !File.Exists(driver.RootDiskPath(record.Uuid)));

    /// <summary>Reaps the instance's domain if its record says it must go, else (when asked) restores its definition from the record. True when reaped.</summary>
    private async Task<bool> SettleDomainAsync(InstanceSlot slot, bool checkDefinition, CancellationToken cancellationToken)
    {
        if (slot.Record is not { } record)
        {
            return false;
        }

        if (MayBeFenced(record))
        {
            var reaped = await TryReapAsync(slot.Uuid, record, cancellationToken).ConfigureAwait(false);
            if (record.DeletedAt is null)
            {
                try
                {
                    await ObservePowerAsync(slot, reaped ? "late domain reaped" : "reconcile", cancellationToken).ConfigureAwait(false);
                }
                catch (LibvirtException ex)
                {
                    LogDomainCheckFailed(logger, slot.Uuid, ex);
                }
            }

            return reaped;
        }

        if (checkDefinition)
        {
            try
            {
                await RestoreDefinitionAsync(slot, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is LibvirtException or InvalidInstanceSpecException or InvalidDataException)
            {
                LogDomainCheckFailed(logger, slot.Uuid, ex);
            }
        }

        return false;
    }

    /// <summary>
    /// Destroys and undefines the domain when <paramref name="record"/> (null: an instance deleted
    /// before this start) says it must go and the domain is ours; the instance's own folder goes
    /// too when the instance is deleted and no live instance uses a file in it. True when reaped.
    /// </summary>
    private async Task<bool> TryReapAsync(Guid uuid, InstanceRecord? record, CancellationToken cancellationToken)
    {
        try
        {
            var xml = (await driver.ReadDomainXmlAsync(uuid, inactive: true, cancellationToken).ConfigureAwait(false))?.Xml;
            if (xml is null || InstanceMetadata.Parse(xml) is null || !DisksAreOurs(xml))
            {
                return false; // gone already, or not a domain this agent made
            }

            var deleted = record is null || record.DeletedAt is not null;
            if (!deleted && !SpawnCleanedUp(uuid, xml))
            {
                return false; // an instance in ERROR that still has its disks: the operator's to delete or rebuild
            }

            LogReaping(logger, uuid, deleted ? "deleted" : "cleaned up after its spawn failed");
            await driver.RemoveDomainAsync(uuid, cancellationToken).ConfigureAwait(false);
            var directory = driver.InstanceDirectory(uuid);
            if (deleted && Directory.Exists(directory) && !UsedByLiveInstance(directory))
            {
                await Task.Run(() => Directory.Delete(directory, recursive: true), cancellationToken).ConfigureAwait(false);
            }

            return true;
        }
        catch (Exception ex) when (ex is LibvirtException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            // Left for the next pass; never adopted meanwhile.
            LogReapFailed(logger, uuid, ex);
            return false;
        }
    }

    /// <summary>
    /// A cleaned-up spawn removed the instance's folder: the domain refers to disks in it and none
    /// of them exists. An ERROR instance whose disks are there (a failed rebuild keeps the old root
    /// disk aside) is not one.
    /// </summary>
    private bool SpawnCleanedUp(Guid uuid, string domainXml)
    {
        var folder = driver.InstanceDirectory(uuid) + "/";
        var own = InstanceDriver.FileDisks(domainXml).Select(d => d.File).Where(f => f.StartsWith(folder, StringComparison.Ordinal)).ToList();
        return own.Count > 0 && !own.Any(File.Exists);
    }

    private bool UsedByLiveInstance(string directory)
    {
        var folder = directory.TrimEnd('/') + "/";
        return slots.Values.Select(s => s.Record).Any(r => r is { DeletedAt: null }
            && r.Spec.BlockDevices.Any(b => b.Source is FileDiskSource f && f.Path.StartsWith(folder, StringComparison.Ordinal)));
    }

    /// <summary>
    /// An idle instance whose persistent definition carries another flavor or image than its record
    /// (a late define of a resize or rebuild that recovery rolled back) is defined again from the
    /// record, then read back: the instance goes to ERROR if libvirt still disagrees.
    /// </summary>
    private async Task RestoreDefinitionAsync(InstanceSlot slot, CancellationToken cancellationToken)
    {
        if (slot.Record is not { TaskState: TaskState.None, DeletedAt: null } record
            || record.VmState is not (VmState.Active or VmState.Stopped or VmState.Paused or VmState.Suspended or VmState.Resized or VmState.SoftDeleted))
        {
            return; // a task's own definitions are its business; a rescued guest runs a rescue definition; ERROR is left as it is
        }

        var uuid = slot.Uuid;
        var wanted = InstanceMetadata.From(record.Spec);
        var defined = await ReadMetadataAsync(uuid, inactive: true, cancellationToken).ConfigureAwait(false);
        if (defined is null || Agrees(defined, wanted))
        {
            return;
        }

        LogDefinitionRestored(logger, uuid, Describe(defined), Describe(wanted));
        await driver.DefinePersistentAsync(builder.Build(record.Spec), cancellationToken).ConfigureAwait(false);
        var after = await ReadMetadataAsync(uuid, inactive: true, cancellationToken).ConfigureAwait(false);
        var running = await ReadMetadataAsync(uuid, inactive: false, cancellationToken).ConfigureAwait(false);
        var holds = after is not null && Agrees(after, wanted);
        var message = holds
            ? $"libvirt's definition carried {Describe(defined)} while the instance is {Describe(wanted)} (a libvirt call of a stopped agent process finished late); it was defined again from the record"
            : $"libvirt's definition carries {(after is null ? "no agent metadata" : Describe(after))} although it was defined again from the record ({Describe(wanted)}); check it with virsh dumpxml --inactive, then rebuild or delete the instance";
        if (holds && running is not null && !Agrees(running, wanted))
        {
            message += $"; the running guest still has {Describe(running)} until it is stopped and started again";
        }

        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (slot.Record is not { TaskState: TaskState.None, DeletedAt: null } now)
            {
                return;
            }

            await CommitLockedAsync(slot, new StateChange(uuid, holds ? now.VmState : VmState.Error, TaskState.None, now.PowerState, holds ? "definition restored from the record" : "definition disagrees with the record")
            {
                Fault = new Fault(holds ? "definition_restored" : "definition_mismatch", message),
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    private async Task<InstanceMetadata?> ReadMetadataAsync(Guid uuid, bool inactive, CancellationToken cancellationToken)
    {
        var xml = (await driver.ReadDomainXmlAsync(uuid, inactive, cancellationToken).ConfigureAwait(false))?.Xml;
        return xml is null ? null : InstanceMetadata.Parse(xml);
    }

    /// <summary>What the agent writes into every definition it makes from a spec: the flavor (vCPUs, memory, disks) and the image.</summary>
    private static bool Agrees(InstanceMetadata domain, InstanceMetadata record) => domain.Flavor == record.Flavor && domain.ImageId == record.ImageId;

    private static string Describe(InstanceMetadata m) => $"flavor {m.Flavor.Name} ({m.Flavor.Vcpus} vCPUs, {m.Flavor.RamMiB} MiB) and image {m.ImageId}";

    [LoggerMessage(Level = LogLevel.Warning, Message = "Domain {InstanceUuid} belongs to an instance the agent {Fate} (a libvirt call of a stopped agent process finished late); destroying and undefining it, not adopting it")]
    private static partial void LogReaping(ILogger logger, Guid instanceUuid, string fate);

    [LoggerMessage(Level = LogLevel.Error, Message = "Domain {InstanceUuid} of a deleted or cleaned-up instance could not be reaped; retrying at the next reconcile pass")]
    private static partial void LogReapFailed(ILogger logger, Guid instanceUuid, Exception error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceUuid}: libvirt's definition carries {Defined}, the record {Recorded}; defining it again from the record")]
    private static partial void LogDefinitionRestored(ILogger logger, Guid instanceUuid, string defined, string recorded);

    [LoggerMessage(Level = LogLevel.Error, Message = "Instance {InstanceUuid}: checking its domain against the record failed; the next reconcile pass or libvirt event tries again")]
    private static partial void LogDomainCheckFailed(ILogger logger, Guid instanceUuid, Exception error);
}
