using System.Collections.Concurrent;
using ComputeAgent.Instances.DomainXml;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.StateModel;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Logging;
using static ComputeAgent.Instances.StateModel.InstanceCommand;

namespace ComputeAgent.Instances.Engine;

/// <summary>
/// The instance engine: every instance's vm_state / task_state / power_state, exactly as
/// design.md §2 decides, committed to the store and published before anyone is told.
/// Commands are decided by <see cref="CommandRules"/>, answered at once with the task_state set,
/// and run one at a time per instance in arrival order; different instances run in parallel.
/// libvirt's events and a periodic bulk reconcile keep power_state in step with what runs.
/// </summary>
public sealed partial class InstanceEngine : IAsyncDisposable
{
    private readonly InstanceStore store;
    private readonly LibvirtSession session;
    private readonly InstanceDriver driver;
    private readonly DomainXmlBuilder builder;
    private readonly EngineOptions options;
    private readonly ILogger logger;
    private readonly ConcurrentDictionary<Guid, InstanceSlot> slots = new();
    private readonly SemaphoreSlim builds;
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim reconcileNow = new(0, 1);
    private readonly TimeProvider time;
    private readonly AgentImageService? imageService;
    private readonly Lock publishGate = new();
    private readonly SortedDictionary<long, EventRecord> unpublished = [];
    private long nextToPublish = 1;
    private Task? eventPump;
    private Task? reconcileLoop;
    private Task? reclaimLoop;

    /// <param name="imageService">The image service with the agent's own access, if any: recovery deletes an interrupted snapshot's queued image through it.</param>
    public InstanceEngine(InstanceStore store, LibvirtSession session, DomainXmlBuilder builder, EngineOptions options, ILogger<InstanceEngine> logger, TimeProvider? time = null, AgentImageService? imageService = null)
    {
        this.imageService = imageService;
        this.store = store ?? throw new ArgumentNullException(nameof(store));
        this.session = session ?? throw new ArgumentNullException(nameof(session));
        this.builder = builder ?? throw new ArgumentNullException(nameof(builder));
        this.options = options ?? throw new ArgumentNullException(nameof(options));
        this.logger = logger ?? throw new ArgumentNullException(nameof(logger));
        options.Validate();
        this.time = time ?? TimeProvider.System;
        driver = new InstanceDriver(session, builder, options);
        builds = new SemaphoreSlim(options.MaxConcurrentBuilds, options.MaxConcurrentBuilds);
    }

    /// <summary>Every committed state change, as it is committed.</summary>
    public EventBroadcast Events { get; } = new();

    public InstanceDriver Driver => driver;

    /// <summary>The sequence number of the last event published to watchers (the controller link's backlog is measured against it).</summary>
    public long LastPublishedSequence
    {
        get
        {
            lock (publishGate)
            {
                return nextToPublish - 1;
            }
        }
    }

    /// <summary>How many reconcile passes have completed (tests and the host's health read it).</summary>
    public int ReconcilePasses => reconcilePasses;

    private int reconcilePasses;

    /// <summary>Started and its libvirt event pump and reconcile loop still running (the host's watchdog reads it).</summary>
    public bool IsAlive => eventPump is { IsCompleted: false } && reconcileLoop is { IsCompleted: false };

    /// <summary>
    /// Loads the records, settles every difference with libvirt (interrupted tasks, vanished
    /// domains, domains of ours with no record), then starts following libvirt. Serve only after.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        nextToPublish = await store.LastSequenceAsync(cancellationToken).ConfigureAwait(false) + 1;
        foreach (var record in await store.ListInstancesAsync(includeDeleted: false, cancellationToken).ConfigureAwait(false))
        {
            var slot = new InstanceSlot(record.Uuid, record);
            if (record.VmState == VmState.Error)
            {
                var faults = await store.ListFaultsAsync(record.Uuid, cancellationToken).ConfigureAwait(false);
                slot.ErrorFromPowerSync = faults.Count > 0 && faults[^1].Code == PowerSyncFaultCode;
            }

            StartSlot(slot);
        }

        await RecoverAsync(cancellationToken).ConfigureAwait(false);
        eventPump = Task.Run(() => PumpLibvirtEventsAsync(stopping.Token), CancellationToken.None);
        reconcileLoop = Task.Run(() => ReconcileLoopAsync(stopping.Token), CancellationToken.None);
        reclaimLoop = Task.Run(() => ReclaimLoopAsync(stopping.Token), CancellationToken.None);
    }

    public InstanceRecord? Find(Guid uuid) => slots.TryGetValue(uuid, out var slot) ? slot.Record : null;

    /// <summary>The instances on this host, deleted ones excluded.</summary>
    public IReadOnlyList<InstanceRecord> List() =>
        slots.Values.Select(s => s.Record).OfType<InstanceRecord>().Where(r => r.DeletedAt is null).OrderBy(r => r.CreatedAt).ToList();

    /// <summary>
    /// Accepts a spawn: validated first (<see cref="InvalidInstanceSpecException"/>, nothing created),
    /// idempotent by UUID (the same UUID again answers the existing instance, never a second guest).
    /// </summary>
    /// <param name="baseImage">Fetches the base image (from the image cache) during BLOCK_DEVICE_MAPPING and returns its local qcow2 path.</param>
    public async Task<InstanceRecord> SpawnAsync(InstanceSpec spec, Func<CancellationToken, Task<string>> baseImage, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(baseImage);
        spec = driver.WithConfigDrive(driver.WithLocalRootDisk(spec));
        _ = builder.Build(spec);

        // The admin password goes to the config drive and nowhere else: the stored spec never holds it.
        var input = new CommandInput { AdminPassword = spec.Guest.AdminPassword };
        spec = InstanceDriver.WithAdminPassword(spec, null);

        var slot = slots.GetOrAdd(spec.Uuid, uuid => StartSlot(new InstanceSlot(uuid, null)));
        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (slot.Record is { } existing)
            {
                return existing;
            }

            var plan = CommandRules.SpawnPlan;
            var run = BeginTask(slot);
            await CommitLockedAsync(slot, new StateChange(spec.Uuid, VmState.Building, plan.TaskStates[0], PowerState.NoState, "spawn accepted")
            {
                Spec = spec,
                Journal = JournalChange.Set(Spawn, new Dictionary<string, string>()),
            }, cancellationToken).ConfigureAwait(false);
            LogAccepted(logger, spec.Uuid, "spawn", plan.TaskStates[0].ToDisplayName());
            var acceptedAt = OperationMetrics.Accepted(Spawn.ToDisplayName());
            Enqueue(slot, () => RunAsync(slot, Spawn, plan, baseImage, run, acceptedAt, input: input));
            return slot.Record!;
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>
    /// Accepts a command on an existing instance and answers at once with its task_state set; the
    /// work goes on whatever the caller does next. Refused commands change nothing.
    /// </summary>
    public Task<InstanceRecord> SubmitAsync(Guid uuid, InstanceCommand command, CancellationToken cancellationToken) =>
        SubmitAsync(uuid, command, CommandInput.None, cancellationToken);

    /// <param name="newFlavor">Resize only: the flavor to resize to (validated before anything changes; the root disk never shrinks).</param>
    public Task<InstanceRecord> SubmitAsync(Guid uuid, InstanceCommand command, Flavor? newFlavor, CancellationToken cancellationToken) =>
        SubmitAsync(uuid, command, new CommandInput { Flavor = newFlavor }, cancellationToken);

    /// <param name="input">What the command needs beyond the instance (resize's flavor, rebuild's image, the password, the snapshot's target); checked before anything changes.</param>
    public async Task<InstanceRecord> SubmitAsync(Guid uuid, InstanceCommand command, CommandInput input, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (command == Spawn)
        {
            throw new ArgumentException("spawn goes through SpawnAsync", nameof(command));
        }

        if (!slots.TryGetValue(uuid, out var slot))
        {
            throw new InstanceNotFoundException(uuid);
        }

        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var record = slot.Record ?? throw new InstanceNotFoundException(uuid);
            var decision = CommandRules.Decide(command, record.VmState, record.TaskState);
            if (!decision.IsAccepted)
            {
                throw new InstanceCommandRefusedException(decision.RefusalMessage!);
            }

            if (!InstanceDriver.Supports(command))
            {
                throw new CommandNotSupportedException($"{command.ToDisplayName()} is not implemented by this agent yet; the instance is unchanged ({record.VmState.ToDisplayName()})");
            }

            var plan = decision.Plan!;
            var newSpec = CheckInput(record, command, input);

            // reclaim_instance_interval = 0: nothing would ever reclaim a soft-deleted instance, so
            // a soft delete is a delete (as Nova's API does then).
            if (command == SoftDelete && options.ReclaimInstanceInterval == TimeSpan.Zero)
            {
                command = Delete;
                plan = CommandRules.Decide(Delete, record.VmState, record.TaskState).Plan!;
            }

            if (decision.Preempts)
            {
                // Only delete preempts: the running task stops at its next safe point, and what it
                // had created stays in the journal for the delete (or a recovery) to remove.
                await (slot.Running?.CancelAsync() ?? Task.CompletedTask).ConfigureAwait(false);
                LogPreempted(logger, uuid, record.TaskState.ToDisplayName(), command.ToDisplayName());
            }

            var run = BeginTask(slot);
            await CommitLockedAsync(slot, new StateChange(uuid, record.VmState, plan.TaskStates[0], record.PowerState, $"{command.ToDisplayName()} accepted")
            {
                Journal = JournalChange.Set(command, new Dictionary<string, string>(slot.Created, StringComparer.Ordinal)),
            }, cancellationToken).ConfigureAwait(false);
            LogAccepted(logger, uuid, command.ToDisplayName(), plan.TaskStates[0].ToDisplayName());
            var accepted = command;
            var acceptedAt = OperationMetrics.Accepted(command.ToDisplayName());
            Enqueue(slot, () => RunAsync(slot, accepted, plan, input.BaseImage, run, acceptedAt, newSpec, input));
            return slot.Record!;
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>Checks what the command needs beyond the instance; returns the instance's new spec for the commands that change it.</summary>
    private InstanceSpec? CheckInput(InstanceRecord record, InstanceCommand command, CommandInput input)
    {
        switch (command)
        {
            case Resize:
                var flavor = input.Flavor ?? throw new InvalidInstanceSpecException("flavor", "(missing)", "the flavor to resize to");
                if (flavor.RootGiB < record.Spec.Flavor.RootGiB)
                {
                    throw new InvalidInstanceSpecException("flavor.root_gib", flavor.RootGiB.ToString(System.Globalization.CultureInfo.InvariantCulture), $"at least the current {record.Spec.Flavor.RootGiB}: a root disk is never shrunk");
                }

                return Validated(record.Spec with { Flavor = flavor });
            case Rebuild:
                var image = input.Image ?? throw new InvalidInstanceSpecException("image_id", "(missing)", "the image to rebuild from");
                _ = input.BaseImage ?? throw new InvalidInstanceSpecException("image_id", image.Id, "an image the agent can fetch");
                // As Nova's rebuild: the password given now is written to the new config drive, then forgotten.
                var rebuilt = Validated(driver.WithConfigDrive(record.Spec with { Image = image, KernelBoot = input.KernelBoot, Guest = record.Spec.Guest with { AdminPassword = input.AdminPassword } }));
                return InstanceDriver.WithAdminPassword(rebuilt, null);
            case SetAdminPassword:
                if (string.IsNullOrEmpty(input.AdminPassword))
                {
                    throw new InvalidInstanceSpecException("admin_password", "(empty)", "the new password");
                }

                if (!ImageProperties.Parse(record.Spec.Image.Properties).QemuGuestAgent)
                {
                    throw new InstanceCommandRefusedException($"cannot set the admin password of {record.Uuid}: its image {record.Spec.Image.Id} does not declare a guest agent (hw_qemu_guest_agent=yes), so nothing in the guest can change it; rebuild from an image with qemu-guest-agent and that property");
                }

                return null;
            case Snapshot or Backup:
                _ = input.Upload ?? throw new InvalidInstanceSpecException("name", "(missing)", "an image to upload the snapshot to");
                return null;
            default:
                return null;
        }
    }

    private InstanceSpec Validated(InstanceSpec spec)
    {
        _ = builder.Build(spec);
        return spec;
    }

    public async ValueTask DisposeAsync()
    {
        // In-flight tasks stop at their next safe point and stay journaled: the next start settles them.
        await stopping.CancelAsync().ConfigureAwait(false);
        foreach (var slot in slots.Values)
        {
            slot.Close();
        }

        var loops = slots.Values.Select(s => s.Loop).OfType<Task>().Append(eventPump ?? Task.CompletedTask).Append(reconcileLoop ?? Task.CompletedTask).Append(reclaimLoop ?? Task.CompletedTask);
        await Task.WhenAll(loops).ConfigureAwait(false);
        stopping.Dispose();
    }

    private InstanceSlot StartSlot(InstanceSlot slot)
    {
        slots[slot.Uuid] = slot;
        return slot;
    }

    private async Task DrainAsync(InstanceSlot slot)
    {
        while (slot.TryTakeNext() is { } work)
        {
            try
            {
                await work().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
            }
#pragma warning disable CA1031 // one instance's failure must never stop its queue
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogUnexpected(logger, slot.Uuid, ex);
            }
        }
    }

    private void Enqueue(InstanceSlot slot, Func<Task> work)
    {
        if (!slot.TryEnqueue(work, DrainAsync))
        {
            throw new ObjectDisposedException(nameof(InstanceEngine), "the engine is stopping");
        }
    }

    private CancellationTokenSource BeginTask(InstanceSlot slot)
    {
        var run = CancellationTokenSource.CreateLinkedTokenSource(stopping.Token);
        slot.Running = run;
        return run;
    }

    private async Task RunAsync(InstanceSlot slot, InstanceCommand command, CommandPlan plan, Func<CancellationToken, Task<string>>? baseImage, CancellationTokenSource run, long acceptedAt, InstanceSpec? newSpec = null, CommandInput? input = null)
    {
        var token = run.Token;
        var record = slot.Record!;
        var uuid = slot.Uuid;
        var vmBefore = record.VmState;
        var powerBefore = record.PowerState;
        var name = command.ToDisplayName();
        var taskRun = new TaskRun(
            record,
            plan,
            vmBefore,
            (next, ct) => CommitForTaskAsync(slot, run, r => new StateChange(uuid, r.VmState, next, r.PowerState, $"{name}: {next.ToDisplayName()}"), ct),
            (key, value, ct) =>
            {
                if (value is null)
                {
                    slot.Created.Remove(key);
                }
                else
                {
                    slot.Created[key] = value;
                }

                var created = new Dictionary<string, string>(slot.Created, StringComparer.Ordinal);
                return CommitForTaskAsync(slot, run, r => new StateChange(uuid, r.VmState, r.TaskState, r.PowerState, $"{name}: {key}") { Journal = JournalChange.Set(command, created) }, ct);
            })
        {
            NewSpec = newSpec,
            Input = input ?? CommandInput.None,
        };

        var holdsBuildSlot = false;
        try
        {
            if (command == Spawn)
            {
                await builds.WaitAsync(token).ConfigureAwait(false);
                holdsBuildSlot = true;
            }

            if (plan.ConfirmsPendingResize && vmBefore == VmState.Resized)
            {
                // design.md §2: from RESIZED these commands first confirm the pending resize.
                await InstanceDriver.ConfirmResizeAsync(record, token).ConfigureAwait(false);
                vmBefore = VmStateAfter.AsBeforeResize.Resolve(record.VmStateBeforeTask ?? VmState.Active);
                var confirmedFrom = vmBefore;
                await CommitForTaskAsync(slot, run, r => new StateChange(uuid, confirmedFrom, plan.TaskStates[1], r.PowerState, $"{name}: pending resize confirmed")
                {
                    PreResize = new ColumnUpdate<PreResizeState?>(null),
                }, token).ConfigureAwait(false);
                record = slot.Record!;
            }

            await driver.ExecuteAsync(command, taskRun, baseImage, token).ConfigureAwait(false);
            var deleted = command is Delete or ForceDelete;
            var power = deleted ? PowerState.NoState : await driver.ReadPowerStateAsync(uuid, token).ConfigureAwait(false);
            var vmAfter = plan.VmStateAfter.Resolve(record.VmStateBeforeTask ?? vmBefore);
            var vmBeforeTask = vmBefore;
            await CommitForTaskAsync(slot, run, r => new StateChange(uuid, vmAfter, TaskState.None, power, $"{name} done")
            {
                Journal = JournalChange.Clear,
                Spec = command switch
                {
                    Resize or Rebuild => newSpec,
                    RevertResize => r.PreResize?.Spec,
                    _ => null,
                },
                VmStateBeforeTask = command is Pause or Resize ? new ColumnUpdate<VmState?>(vmBeforeTask) : default,
                PreResize = command switch
                {
                    Resize => new ColumnUpdate<PreResizeState?>(new PreResizeState(r.Spec, taskRun.SavedFiles ?? new Dictionary<string, string>())),
                    ConfirmResize or RevertResize => new ColumnUpdate<PreResizeState?>(null),
                    _ => default,
                },
                PreRescueXml = command switch
                {
                    Rescue => new ColumnUpdate<string?>(taskRun.SavedDomainXml),
                    Unrescue => new ColumnUpdate<string?>(null),
                    _ => default,
                },
                DeletedAt = deleted ? new ColumnUpdate<DateTimeOffset?>(time.GetUtcNow()) : default,
            }, CancellationToken.None).ConfigureAwait(false);
            slot.Created.Clear();
            LogDone(logger, uuid, name, vmAfter.ToDisplayName(), power.ToDisplayName());
            OperationMetrics.Ended(name, "done", acceptedAt);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Preempted by delete, or the engine is stopping: the journal keeps what was created.
            LogInterrupted(logger, uuid, name);
            OperationMetrics.Ended(name, "interrupted", acceptedAt);
        }
#pragma warning disable CA1031 // every failure ends in a recorded state and fault, whatever its type
        catch (Exception ex)
#pragma warning restore CA1031
        {
            await FailAsync(slot, run, command, vmBefore, powerBefore, ex).ConfigureAwait(false);
            OperationMetrics.Ended(name, "failed", acceptedAt);
        }
        finally
        {
            if (holdsBuildSlot)
            {
                builds.Release();
            }

            if (ReferenceEquals(slot.Running, run))
            {
                slot.Running = null;
            }

            run.Dispose();
        }
    }

    /// <summary>
    /// design.md §2: a failed spawn ends in ERROR with nothing left behind; a failed operation that
    /// left the guest as it was rolls task_state back and keeps vm_state; otherwise ERROR. Always a fault.
    /// </summary>
    private async Task FailAsync(InstanceSlot slot, CancellationTokenSource run, InstanceCommand command, VmState vmBefore, PowerState powerBefore, Exception error)
    {
        var uuid = slot.Uuid;
        var name = command.ToDisplayName();
        PowerState? power;
        try
        {
            if (command == Spawn)
            {
                await driver.DeleteAsync(uuid, CancellationToken.None).ConfigureAwait(false);
            }

            power = await driver.ReadPowerStateAsync(uuid, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is LibvirtException or IOException or UnauthorizedAccessException)
        {
            power = null;
            LogCleanupFailed(logger, uuid, name, ex);
        }

        var unchanged = command != Spawn && power == powerBefore;
        var vmAfter = unchanged ? vmBefore : VmState.Error;
        var message = error switch
        {
            LibvirtException libvirt => $"{name} failed: {libvirt.LibvirtMessage}",
            InvalidInstanceSpecException invalid => $"{name} failed: {invalid.Message}",
            _ => $"{name} failed: {error.Message}",
        };
        message += unchanged
            ? "; the guest is unchanged, nothing else was done"
            : command == Spawn ? "; the domain and the instance's files were removed" : "; the guest's state is uncertain, so the instance is in ERROR";
        LogFailed(logger, uuid, name, vmAfter.ToDisplayName(), error);
        try
        {
            await CommitForTaskAsync(slot, run, r => new StateChange(uuid, vmAfter, TaskState.None, power ?? PowerState.NoState, $"{name} failed")
            {
                Journal = JournalChange.Clear,
                Fault = new Fault(error is LibvirtException le ? $"libvirt.{le.Code}" : error.GetType().Name, message, error.ToString()),
            }, CancellationToken.None).ConfigureAwait(false);
            slot.Created.Clear();
        }
        catch (OperationCanceledException)
        {
            // A delete took over while this task was failing: it settles the instance.
        }
    }

    /// <summary>Commits a change of the running task, unless a delete has taken the instance over.</summary>
    private async Task CommitForTaskAsync(InstanceSlot slot, CancellationTokenSource run, Func<InstanceRecord, StateChange> change, CancellationToken cancellationToken)
    {
        await slot.Gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (!ReferenceEquals(slot.Running, run) || run.IsCancellationRequested)
            {
                throw new OperationCanceledException("the task was preempted", run.IsCancellationRequested ? run.Token : cancellationToken);
            }

            await CommitLockedAsync(slot, change(slot.Record!), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>Writes the change, updates the in-memory record, publishes the event. Caller holds the slot's gate.</summary>
    private async Task CommitLockedAsync(InstanceSlot slot, StateChange change, CancellationToken cancellationToken)
    {
        var old = slot.Record;
        var seq = await store.CommitAsync(change, cancellationToken).ConfigureAwait(false);
        var now = time.GetUtcNow();
        var updated = old is null
            ? new InstanceRecord(change.Uuid, change.Spec!.Name, change.Spec, change.VmState, change.TaskState, change.PowerState, now, now,
                change.VmStateBeforeTask.IsSet ? change.VmStateBeforeTask.Value : null,
                change.PreResize.IsSet ? change.PreResize.Value : null,
                change.PreRescueXml.IsSet ? change.PreRescueXml.Value : null,
                change.DeletedAt.IsSet ? change.DeletedAt.Value : null)
            : old with
            {
                Spec = change.Spec ?? old.Spec,
                VmState = change.VmState,
                TaskState = change.TaskState,
                PowerState = change.PowerState,
                UpdatedAt = now,
                VmStateBeforeTask = change.VmStateBeforeTask.IsSet ? change.VmStateBeforeTask.Value : old.VmStateBeforeTask,
                PreResize = change.PreResize.IsSet ? change.PreResize.Value : old.PreResize,
                PreRescueXml = change.PreRescueXml.IsSet ? change.PreRescueXml.Value : old.PreRescueXml,
                DeletedAt = change.DeletedAt.IsSet ? change.DeletedAt.Value : old.DeletedAt,
            };
        slot.Record = updated;
        slot.Committed();
        slot.ErrorFromPowerSync = change.VmState == VmState.Error && (change.Fault is null ? slot.ErrorFromPowerSync : change.Fault.Code == PowerSyncFaultCode);
        if (seq > 0)
        {
            PublishInOrder(new EventRecord(seq, change.Uuid, old?.VmState, change.VmState, old?.TaskState, change.TaskState, old?.PowerState, change.PowerState, change.Cause, now));
        }
    }

    /// <summary>
    /// Commits of different instances finish in any order, but watchers must see the event log's
    /// order (a watcher that resumes from the last sequence it saw must miss nothing): an event
    /// waits here until every earlier sequence number has been published.
    /// </summary>
    private void PublishInOrder(EventRecord record)
    {
        lock (publishGate)
        {
            unpublished[record.Seq] = record;
            while (unpublished.Remove(nextToPublish, out var next))
            {
                Events.Publish(next);
                nextToPublish++;
            }

            // A sequence number that never comes (a commit that failed after numbering) must not
            // hold every watcher forever: past a bound, publish what is waiting, in order.
            if (unpublished.Count > 1000)
            {
                LogSequenceGap(logger, nextToPublish, unpublished.Keys.First());
                foreach (var waiting in unpublished.Values)
                {
                    Events.Publish(waiting);
                }

                nextToPublish = unpublished.Keys.Last() + 1;
                unpublished.Clear();
            }
        }
    }

    /// <summary>
    /// Reads one instance's power_state from libvirt now and applies it if the instance is idle
    /// and nothing was committed for it since the read began (issue 13: a bulk read taken before a
    /// task ended must never overrule what the task recorded).
    /// </summary>
    private async Task ObservePowerAsync(InstanceSlot slot, string cause, CancellationToken cancellationToken)
    {
        var version = slot.Version;
        var power = await driver.ReadPowerStateAsync(slot.Uuid, cancellationToken).ConfigureAwait(false);
        await ApplyObservedPowerAsync(slot, power, version, cause, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Applies a power_state libvirt showed for an idle instance (no task in flight: a task's own
    /// stops and starts are its business and it reads the final state itself when it ends).
    /// </summary>
    /// <param name="readAtVersion">The slot's version when the read began: a commit since then is newer than the read, which is dropped.</param>
    private async Task ApplyObservedPowerAsync(InstanceSlot slot, PowerState power, long readAtVersion, string cause, CancellationToken cancellationToken)
    {
        var restart = false;
        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (slot.Record is not { TaskState: TaskState.None, DeletedAt: null } record || slot.Version != readAtVersion)
            {
                return;
            }

            var vm = PowerSyncRules.Reconcile(record.VmState, power, options.RestartCrashedGuests, slot.ErrorFromPowerSync);
            if (vm == record.VmState && power == record.PowerState)
            {
                return;
            }

            // Only where a hard reboot is allowed: an ERROR instance found crashed is left to the operator.
            restart = power == PowerState.Crashed && options.RestartCrashedGuests && CommandRules.Decide(RebootHard, vm, TaskState.None).IsAccepted;
            var fault = vm == VmState.Error && record.VmState != VmState.Error
                ? new Fault(PowerSyncFaultCode, $"libvirt shows the guest {power.ToDisplayName()} while the instance was {record.VmState.ToDisplayName()} ({cause}); nothing the agent did explains it")
                : null;
            LogPowerSync(logger, slot.Uuid, record.VmState.ToDisplayName(), vm.ToDisplayName(), power.ToDisplayName(), cause);
            await CommitLockedAsync(slot, new StateChange(slot.Uuid, vm, TaskState.None, power, cause) { Fault = fault }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            slot.Gate.Release();
        }

        if (restart)
        {
            await SubmitAsync(slot.Uuid, RebootHard, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task PumpLibvirtEventsAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var e in session.Events.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (options.DropsDomainEvents)
                {
                    continue;
                }

                if (e.Kind == DomainEventKind.ConnectionRestored)
                {
                    // Events were missed while disconnected: check everything now.
                    reconcileNow.Release();
                    continue;
                }

                if (e.Kind == DomainEventKind.Lifecycle && e.Lifecycle is DomainLifecycleEventType.Defined or DomainLifecycleEventType.Started)
                {
                    FenceOnEvent(e.Uuid, defined: e.Lifecycle == DomainLifecycleEventType.Defined);
                }

                // A Shutdown event means the guest has finished shutting down while QEMU is still
                // exiting (the domain still "runs"): the Stopped event that follows settles it.
                if (e.Kind != DomainEventKind.Lifecycle || e.Lifecycle == DomainLifecycleEventType.Shutdown || !slots.TryGetValue(e.Uuid, out var slot))
                {
                    continue;
                }

                // The event says something changed; libvirt's current state says what it is now
                // (events arrive late and out of a task's order: the state read is the truth).
                var cause = $"libvirt event {e.Detail}";
                Enqueue(slot, () => ObservePowerAsync(slot, cause, cancellationToken));
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async Task ReconcileLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await reconcileNow.WaitAsync(options.ReconcileInterval, cancellationToken).ConfigureAwait(false);
                await ReconcileAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (LibvirtException ex)
            {
                LogReconcileFailed(logger, ex);
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    /// <summary>One bulk libvirt call, then every idle instance whose power_state differs is settled.</summary>
    public async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        var powers = await driver.ReadAllPowerStatesAsync(cancellationToken).ConfigureAwait(false);
        await FenceAsync(powers, recovery: false, cancellationToken).ConfigureAwait(false);
        await SettleIdleAsync(powers, "reconcile", "reconcile", cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref reconcilePasses);
    }

    /// <summary>
    /// Compares one bulk read of libvirt with every idle instance; those in step are passed over
    /// without taking their gate, so a pass over thousands costs little. The bulk read is only a
    /// hint: it may predate a task that ended since, so a difference is read again for that one
    /// domain and applied only if nothing changed the instance meanwhile.
    /// </summary>
    private async Task SettleIdleAsync(Dictionary<Guid, PowerState> powers, string cause, string goneCause, CancellationToken cancellationToken)
    {
        foreach (var slot in slots.Values)
        {
            if (slot.Record is { TaskState: TaskState.None, DeletedAt: null } record)
            {
                var found = powers.TryGetValue(slot.Uuid, out var power);
                if (!found)
                {
                    power = PowerState.NoState;
                }

                if (power != record.PowerState || PowerSyncRules.Reconcile(record.VmState, power, options.RestartCrashedGuests, slot.ErrorFromPowerSync) != record.VmState)
                {
                    await ObservePowerAsync(slot, found ? cause : goneCause, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>The fault code of an ERROR that power sync, not a failed task, caused.</summary>
    private const string PowerSyncFaultCode = "power_sync";

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceUuid}: {Command} accepted, task_state {TaskState}")]
    private static partial void LogAccepted(ILogger logger, Guid instanceUuid, string command, string taskState);

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceUuid}: {Command} done, vm_state {VmState}, power_state {PowerState}")]
    private static partial void LogDone(ILogger logger, Guid instanceUuid, string command, string vmState, string powerState);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceUuid}: {Command} failed, vm_state now {VmState}")]
    private static partial void LogFailed(ILogger logger, Guid instanceUuid, string command, string vmState, Exception error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Instance {InstanceUuid}: cleaning up after a failed {Command} failed")]
    private static partial void LogCleanupFailed(ILogger logger, Guid instanceUuid, string command, Exception error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceUuid}: {Command} interrupted (preempted by delete, or the agent is stopping)")]
    private static partial void LogInterrupted(ILogger logger, Guid instanceUuid, string command);

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceUuid}: {Command} preempts the running {TaskState}")]
    private static partial void LogPreempted(ILogger logger, Guid instanceUuid, string taskState, string command);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Instance {InstanceUuid}: vm_state {OldVmState} -> {VmState}, power_state {PowerState} ({Cause})")]
    private static partial void LogPowerSync(ILogger logger, Guid instanceUuid, string oldVmState, string vmState, string powerState, string cause);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Event {Expected} never came; publishing from {Next} on")]
    private static partial void LogSequenceGap(ILogger logger, long expected, long next);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reconcile with libvirt failed; retrying at the next interval")]
    private static partial void LogReconcileFailed(ILogger logger, Exception error);

    [LoggerMessage(Level = LogLevel.Error, Message = "Instance {InstanceUuid}: unexpected failure in its work queue")]
    private static partial void LogUnexpected(ILogger logger, Guid instanceUuid, Exception error);
}
