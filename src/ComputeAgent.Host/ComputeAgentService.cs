using System.Globalization;
using ComputeAgent.Api.V1;
using ComputeAgent.Instances.Engine;
using ComputeAgent.Instances.Images;
using ComputeAgent.Instances.Model;
using ComputeAgent.Instances.Store;
using ComputeAgent.Libvirt;
using Google.Protobuf;
using Grpc.Core;
using Command = ComputeAgent.Instances.StateModel.InstanceCommand;
using States = ComputeAgent.Instances.StateModel;

namespace ComputeAgent.Host;

/// <summary>The gRPC API (proto/computeagent/v1): validates, hands the command to the engine, answers at once.</summary>
public sealed class ComputeAgentService(AgentRuntime runtime, RequestLedger ledger, ImageSource images, HostInventory inventory, ConsoleSessions consoles) : Api.V1.ComputeAgent.ComputeAgentBase
{
    private const int MaxPageSize = 1000;
    private const int MaxConsoleLines = 10_000;
    private const int MaxConsoleInput = 64 * 1024;

    private InstanceEngine Engine => runtime.Engine ?? throw new AgentNotReadyException();

    public override Task<InstanceReply> Spawn(SpawnRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, async () =>
        {
            var uuid = ParseUuid(request.InstanceUuid);
            if (Engine.Find(uuid) is { } existing)
            {
                return Reply(existing);
            }

            if (request.Flavor is null)
            {
                throw new InvalidInstanceSpecException("flavor", "(missing)", "a flavor with vcpus, ram_mib and root_gib");
            }

            if (string.IsNullOrEmpty(request.ImageId))
            {
                throw new InvalidInstanceSpecException("image_id", "(missing)", "the Glance id of the image to boot");
            }

            var token = string.IsNullOrEmpty(request.AuthToken) ? null : request.AuthToken;

            // The image's metadata decides the domain XML, so it is read (and the spec validated)
            // before the spawn is accepted; the bytes are fetched while the instance builds.
            var glanceImage = await images.GetImageAsync(request.ImageId, token, context.CancellationToken).ConfigureAwait(false);
            var image = glanceImage.Meta;
            var spec = new InstanceSpec
            {
                Uuid = uuid,
                Name = request.Name,
                Flavor = request.Flavor.FromApi(),
                Image = image,
                Owner = new InstanceOwner(request.ProjectId, request.UserId),
                CreatedAt = DateTimeOffset.UtcNow,
                Ports = request.Ports.Select((p, i) => ToPort(p, i)).ToList(),
                Guest = request.ToGuestData(),
                KernelBoot = images.KernelBootFor(image),
            };
            glanceImage.CheckFits(spec.Flavor);
            var record = await Engine.SpawnAsync(spec, ct => images.GetBaseImageAsync(glanceImage, token, ct), context.CancellationToken).ConfigureAwait(false);
            return Reply(record);
        });

    public override Task<InstanceReply> Pause(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Pause, context);

    public override Task<InstanceReply> Unpause(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Unpause, context);

    public override Task<InstanceReply> Suspend(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Suspend, context);

    public override Task<InstanceReply> Resume(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Resume, context);

    public override Task<InstanceReply> Rescue(RescueRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, async () =>
        {
            var uuid = ParseUuid(request.InstanceUuid);
            var record = Engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
            var input = CommandInput.None;
            if (!string.IsNullOrEmpty(request.ImageId) && request.ImageId != record.Spec.Image.Id)
            {
                var token = string.IsNullOrEmpty(request.AuthToken) ? null : request.AuthToken;
                var image = await images.GetImageAsync(request.ImageId, token, context.CancellationToken).ConfigureAwait(false);
                if (images.KernelBootFor(image.Meta) is not null)
                {
                    // The rescue domain keeps the instance's own boot; a kernel the image names would not be booted.
                    throw new InvalidInstanceSpecException("image_id", request.ImageId, "a rescue image that boots from its own disk (this one names kernel_id)");
                }

                input = new CommandInput { BaseImage = ct => images.GetBaseImageAsync(image, token, ct) };
            }

            return Reply(await Engine.SubmitAsync(uuid, Command.Rescue, input, context.CancellationToken).ConfigureAwait(false));
        });

    public override Task<InstanceReply> Unrescue(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Unrescue, context);

    public override Task<InstanceReply> ConfirmResize(InstanceRequest request, ServerCallContext context) => Submit(request, Command.ConfirmResize, context);

    public override Task<InstanceReply> RevertResize(InstanceRequest request, ServerCallContext context) => Submit(request, Command.RevertResize, context);

    public override Task<InstanceReply> Start(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Start, context);

    public override Task<InstanceReply> Stop(StopRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, async () =>
        {
            var uuid = ParseUuid(request.InstanceUuid);
            var input = CommandInput.None;
            if (request.GracefulTimeout is { } graceful)
            {
                input = graceful is { Seconds: >= 0 and < AgentOptions.MaxGracefulStopTimeoutSeconds, Nanos: >= 0 and < 1_000_000_000 } or { Seconds: AgentOptions.MaxGracefulStopTimeoutSeconds, Nanos: 0 }
                    ? new CommandInput { GracefulStopTimeout = graceful.ToTimeSpan() }
                    : throw new InvalidInstanceSpecException("graceful_timeout", graceful.ToString(), $"0s (destroy at once) to {AgentOptions.MaxGracefulStopTimeoutSeconds}s, or absent for the agent's setting");
            }

            return Reply(await Engine.SubmitAsync(uuid, Command.Stop, input, context.CancellationToken).ConfigureAwait(false));
        });

    public override Task<InstanceReply> Delete(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Delete, context);

    public override Task<InstanceReply> SoftDelete(InstanceRequest request, ServerCallContext context) => Submit(request, Command.SoftDelete, context);

    public override Task<InstanceReply> Restore(InstanceRequest request, ServerCallContext context) => Submit(request, Command.Restore, context);

    public override Task<InstanceReply> ForceDelete(InstanceRequest request, ServerCallContext context) => Submit(request, Command.ForceDelete, context);

    public override Task<InstanceReply> Rebuild(RebuildRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, async () =>
        {
            var uuid = ParseUuid(request.InstanceUuid);
            if (string.IsNullOrEmpty(request.ImageId))
            {
                throw new InvalidInstanceSpecException("image_id", "(missing)", "the Glance id of the image to rebuild from (the instance's own image to start afresh)");
            }

            var token = string.IsNullOrEmpty(request.AuthToken) ? null : request.AuthToken;
            var image = await images.GetImageAsync(request.ImageId, token, context.CancellationToken).ConfigureAwait(false);
            image.CheckFits((Engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid)).Spec.Flavor);
            var input = new CommandInput
            {
                Image = image.Meta,
                KernelBoot = images.KernelBootFor(image.Meta),
                BaseImage = ct => images.GetBaseImageAsync(image, token, ct),
                AdminPassword = string.IsNullOrEmpty(request.AdminPassword) ? null : request.AdminPassword,
            };
            return Reply(await Engine.SubmitAsync(uuid, Command.Rebuild, input, context.CancellationToken).ConfigureAwait(false));
        });

    public override Task<InstanceReply> SetAdminPassword(SetAdminPasswordRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, async () =>
        {
            var engine = Engine;
            var uuid = ParseUuid(request.InstanceUuid);
            var cancellationToken = context.CancellationToken;

            // Answered when the guest agent has: subscribe first, so the task's end cannot be missed.
            using var live = engine.Events.Subscribe(cancellationToken);
            var input = new CommandInput { AdminPassword = request.AdminPassword, User = request.User };
            await engine.SubmitAsync(uuid, Command.SetAdminPassword, input, cancellationToken).ConfigureAwait(false);
            EventRecord done;
            while ((done = await live.ReadAsync(cancellationToken).ConfigureAwait(false)) is not { NewTaskState: States.TaskState.None } || done.Uuid != uuid)
            {
            }

            var record = engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
            if (done.Cause.EndsWith("failed", StringComparison.Ordinal))
            {
                var faults = runtime.Store is { } store ? await store.ListFaultsAsync(uuid, cancellationToken).ConfigureAwait(false) : [];
                var fault = faults.Count > 0 ? faults[^1] : null;
                var unresponsive = fault?.Code is "libvirt.AgentUnresponsive" or "libvirt.AgentUnsynced";
                throw new RpcException(new Status(
                    unresponsive ? StatusCode.Unavailable : StatusCode.FailedPrecondition,
                    (fault?.Message ?? "set admin password failed")
                        + (unresponsive ? "; the guest agent did not answer: check that qemu-guest-agent runs in the guest, then retry" : string.Empty)
                        + $"; the instance is {record.VmState.ToApi()}"));
            }

            return Reply(record);
        });

    public override Task<SnapshotReply> Snapshot(SnapshotRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, () =>
            SnapshotAsync(request.InstanceUuid, Command.Snapshot, request.Name, request.Metadata, rotation: null, request.AuthToken, context.CancellationToken, existingImageId: request.ImageId));

    public override Task<SnapshotReply> Backup(BackupRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, () =>
        {
            if (string.IsNullOrEmpty(request.BackupType))
            {
                throw new InvalidInstanceSpecException("backup_type", "(missing)", "the backup's type, e.g. daily or weekly");
            }

            return SnapshotAsync(request.InstanceUuid, Command.Backup, request.Name, request.Metadata, new BackupRotation(request.BackupType, request.Rotation), request.AuthToken, context.CancellationToken);
        });

    public override Task<InstanceReply> Resize(ResizeRequest request, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, async () =>
            Reply(await Engine.SubmitAsync(ParseUuid(request.InstanceUuid), Command.Resize, request.Flavor?.FromApi(), context.CancellationToken).ConfigureAwait(false)));

    public override Task<InstanceReply> Reboot(RebootRequest request, ServerCallContext context) =>
        Submit(new InstanceRequest { RequestId = request.RequestId, InstanceUuid = request.InstanceUuid }, request.Hard ? Command.RebootHard : Command.RebootSoft, context);

    public override async Task<Instance> GetInstance(GetInstanceRequest request, ServerCallContext context)
    {
        var uuid = ParseUuid(request.InstanceUuid);
        var record = Engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
        return await WithFaultAsync(record, context.CancellationToken).ConfigureAwait(false);
    }

    public override Task<ListInstancesReply> ListInstances(ListInstancesRequest request, ServerCallContext context)
    {
        var pageSize = request.PageSize is > 0 and <= MaxPageSize ? request.PageSize : request.PageSize == 0 ? 100
            : throw new InvalidInstanceSpecException("page_size", request.PageSize.ToString(CultureInfo.InvariantCulture), $"1 to {MaxPageSize}");
        var offset = string.IsNullOrEmpty(request.PageToken) ? 0
            : int.TryParse(request.PageToken, NumberStyles.None, CultureInfo.InvariantCulture, out var o) ? o
            : throw new InvalidInstanceSpecException("page_token", request.PageToken, "the next_page_token of a previous reply");
        var vmState = request.VmState.FromApi();
        var matching = Engine.List()
            .Where(r => vmState is null || r.VmState == vmState)
            .Where(r => string.IsNullOrEmpty(request.ProjectId) || r.Spec.Owner.ProjectId == request.ProjectId)
            .ToList();
        var reply = new ListInstancesReply();
        reply.Instances.AddRange(matching.Skip(offset).Take(pageSize).Select(r => r.ToApi()));
        if (offset + pageSize < matching.Count)
        {
            reply.NextPageToken = (offset + pageSize).ToString(CultureInfo.InvariantCulture);
        }

        return Task.FromResult(reply);
    }

    public override async Task WatchInstances(WatchInstancesRequest request, IServerStreamWriter<InstanceEvent> responseStream, ServerCallContext context)
    {
        var engine = Engine;
        var store = runtime.Store ?? throw new AgentNotReadyException();
        Guid? only = string.IsNullOrEmpty(request.InstanceUuid) ? null : ParseUuid(request.InstanceUuid);
        var cancellationToken = context.CancellationToken;

        // Subscribe before reading the log, then skip what the log already gave: nothing falls between.
        using var live = engine.Events.Subscribe(cancellationToken);
        var sent = request.AfterSequence;
        if (request.Snapshot)
        {
            var now = await store.LastSequenceAsync(cancellationToken).ConfigureAwait(false);
            foreach (var record in engine.List().Where(r => only is null || r.Uuid == only))
            {
                await responseStream.WriteAsync(new InstanceEvent
                {
                    Sequence = now,
                    InstanceUuid = record.Uuid.ToString(),
                    VmState = record.VmState.ToApi(),
                    TaskState = record.TaskState.ToApi(),
                    PowerState = record.PowerState.ToApi(),
                    Cause = "snapshot",
                }, cancellationToken).ConfigureAwait(false);
            }

            sent = Math.Max(sent, now);
        }
        else if (request.AfterSequence == 0 && !request.ReplayOnly)
        {
            sent = await store.LastSequenceAsync(cancellationToken).ConfigureAwait(false);
        }

        // replay_only from 0 reads the whole log: sent stays 0, and sequences start at 1.
        while ((request.AfterSequence > 0 || request.ReplayOnly) && !request.Snapshot)
        {
            var page = await store.ReadEventsAsync(sent, 1000, cancellationToken).ConfigureAwait(false);
            foreach (var e in page.Where(e => only is null || e.Uuid == only))
            {
                await responseStream.WriteAsync(e.ToApi(), cancellationToken).ConfigureAwait(false);
            }

            if (page.Count == 0)
            {
                break;
            }

            sent = page[^1].Seq;
        }

        if (request.ReplayOnly)
        {
            return;
        }

        await foreach (var e in live.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (e.Seq > sent && (only is null || e.Uuid == only))
            {
                await responseStream.WriteAsync(e.ToApi(), cancellationToken).ConfigureAwait(false);
                Metrics.HostMetrics.Delivered(e, "grpc");
                sent = e.Seq;
            }
        }
    }

    public override async Task<Instance> WaitInstance(WaitInstanceRequest request, ServerCallContext context)
    {
        var engine = Engine;
        var uuid = ParseUuid(request.InstanceUuid);
        var target = request.VmState.FromApi();
        using var live = engine.Events.Subscribe(context.CancellationToken);
        while (true)
        {
            var record = engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
            if (target is null ? record.TaskState == States.TaskState.None : record.VmState == target)
            {
                return await WithFaultAsync(record, context.CancellationToken).ConfigureAwait(false);
            }

            try
            {
                while ((await live.ReadAsync(context.CancellationToken).ConfigureAwait(false)).Uuid != uuid)
                {
                }
            }
            catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
            {
                throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"instance {uuid} is still {record.VmState.ToApi()} / {record.TaskState.ToApi()}"));
            }
        }
    }

    public override Task<Api.V1.Host> GetHost(GetHostRequest request, ServerCallContext context) => inventory.ReadHostAsync(context.CancellationToken);

    public override async Task<ConsoleOutput> GetConsoleOutput(GetConsoleOutputRequest request, ServerCallContext context)
    {
        var uuid = ParseUuid(request.InstanceUuid);
        _ = Engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
        var lines = request.Lines is > 0 and <= MaxConsoleLines ? request.Lines : request.Lines == 0 ? 100
            : throw new InvalidInstanceSpecException("lines", request.Lines.ToString(CultureInfo.InvariantCulture), $"1 to {MaxConsoleLines}");
        var path = Engine.Driver.Host.ConsoleLogPath(uuid);
        if (!File.Exists(path))
        {
            return new ConsoleOutput();
        }

        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var tail = new Queue<string>(lines);
        while (await reader.ReadLineAsync(context.CancellationToken).ConfigureAwait(false) is { } line)
        {
            if (tail.Count == lines)
            {
                tail.Dequeue();
            }

            tail.Enqueue(line.TrimEnd('\r'));
        }

        return new ConsoleOutput { Output = string.Join('\n', tail) };
    }

    public override async Task<DomainXml> GetDomainXml(GetDomainXmlRequest request, ServerCallContext context)
    {
        var uuid = ParseUuid(request.InstanceUuid);
        var record = Engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
        var read = await Engine.Driver.ReadDomainXmlAsync(uuid, request.Inactive, context.CancellationToken).ConfigureAwait(false);
        return read is { } domain
            ? new DomainXml { Xml = domain.Xml, Active = domain.Active }
            : throw new RpcException(new Status(StatusCode.FailedPrecondition, $"instance {uuid} has no libvirt domain: it is {record.VmState.ToApi()} / {record.TaskState.ToApi()}"
                + (record.VmState == States.VmState.Building ? "; the spawn defines it after the disks are ready, ask again then" : string.Empty)));
    }

    public override async Task AttachConsole(IAsyncStreamReader<ConsoleInput> requestStream, IServerStreamWriter<ConsoleData> responseStream, ServerCallContext context)
    {
        var cancellationToken = context.CancellationToken;
        if (!await requestStream.MoveNext(cancellationToken).ConfigureAwait(false) || requestStream.Current.InputCase != ConsoleInput.InputOneofCase.Attach)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "the first ConsoleInput must be attach, naming the instance (instance_uuid); keystrokes (data) come after it"));
        }

        var attach = requestStream.Current.Attach;
        var uuid = ParseUuid(attach.InstanceUuid);
        var record = Engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
        var session = await consoles.OpenAsync(uuid, attach.Force, context.Peer, cancellationToken).ConfigureAwait(false);
        var how = "the client left";
        try
        {
            await using var console = await OpenConsoleAsync(record, attach.Force, cancellationToken).ConfigureAwait(false);
            using var live = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, session.Ended);
            RpcException? badInput = null;
            var input = Task.Run(
                async () =>
                {
                    badInput = await CopyConsoleInputAsync(requestStream, console, live.Token).ConfigureAwait(false);
                    if (badInput is not null)
                    {
                        await live.CancelAsync().ConfigureAwait(false);
                    }
                },
                CancellationToken.None);
            LibvirtException? streamError = null;
            try
            {
                await foreach (var chunk in console.Output.ReadAllAsync(live.Token).ConfigureAwait(false))
                {
                    await responseStream.WriteAsync(new ConsoleData { Data = ByteString.CopyFrom(chunk.Span) }, live.Token).ConfigureAwait(false);
                }
            }
            catch (LibvirtException ex)
            {
                streamError = ex;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // The agent ended the session, or the input was refused: said below.
            }
            finally
            {
                await live.CancelAsync().ConfigureAwait(false);
                await input.ConfigureAwait(false);
            }

            var end = session.Reason != ConsoleEnd.None ? session.EndStatus
                : badInput is not null ? badInput.Status
                : ConsoleClosed(uuid, streamError);
            throw new RpcException(end);
        }
        catch (RpcException ex)
        {
            how = ex.Status.Detail;
            throw;
        }
        finally
        {
            consoles.Close(session, how);
        }
    }

    /// <summary>
    /// Snapshot and backup: the image record is created before the command is accepted, so the
    /// reply carries its id; a refusal is checked first and removes the record if it still comes.
    /// </summary>
    private async Task<SnapshotReply> SnapshotAsync(string instanceUuid, Command command, string name, IDictionary<string, string> metadata, BackupRotation? rotation, string authToken, CancellationToken cancellationToken, string existingImageId = "")
    {
        var engine = Engine;
        var uuid = ParseUuid(instanceUuid);
        var record = engine.Find(uuid) ?? throw new InstanceNotFoundException(uuid);
        var decision = States.CommandRules.Decide(command, record.VmState, record.TaskState);
        if (!decision.IsAccepted)
        {
            throw new InstanceCommandRefusedException(decision.RefusalMessage!);
        }

        var token = string.IsNullOrEmpty(authToken) ? null : authToken;
        var target = string.IsNullOrEmpty(existingImageId)
            ? await images.CreateUploadTargetAsync(record.Spec, name, new Dictionary<string, string>(metadata, StringComparer.Ordinal), rotation, token, cancellationToken).ConfigureAwait(false)
            : images.ExistingUploadTarget(record.Spec, existingImageId, token);
        try
        {
            var accepted = await engine.SubmitAsync(uuid, command, new CommandInput { Upload = target }, cancellationToken).ConfigureAwait(false);
            return new SnapshotReply { Instance = accepted.ToApi(), ImageId = target.ImageId };
        }
        catch
        {
            await target.AbandonAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    private async Task<DomainConsole> OpenConsoleAsync(InstanceRecord record, bool force, CancellationToken cancellationToken)
    {
        try
        {
            return await Engine.Driver.OpenConsoleAsync(record.Uuid, force, cancellationToken).ConfigureAwait(false)
                ?? throw new RpcException(new Status(StatusCode.FailedPrecondition,
                    $"instance {record.Uuid} is not running (it is {record.VmState.ToApi()} / {record.PowerState.ToApi()}): its console has no guest behind it; start (or unpause) it first"));
        }
        catch (LibvirtException ex) when (ex.Code == LibvirtErrorCode.OperationFailed)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the console of instance {record.Uuid} is held outside the agent (a virsh console?): {ex.LibvirtMessage}; attach with force to take it over"));
        }
        catch (LibvirtException ex) when (ex.Code == LibvirtErrorCode.NoSupport)
        {
            // libvirt's test driver, for one, has no consoles.
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"the libvirt driver the agent uses cannot open a guest's console ({ex.LibvirtMessage}); read the console log with GetConsoleOutput instead"));
        }
        catch (LibvirtException ex) when (ex.Code is LibvirtErrorCode.OperationInvalid or LibvirtErrorCode.NoDomain)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, $"instance {record.Uuid} stopped while its console was opened ({ex.LibvirtMessage}); start it and attach again"));
        }
    }

    /// <summary>Writes the caller's keystrokes to the console until the caller stops sending; a bad message is returned, not thrown.</summary>
    private static async Task<RpcException?> CopyConsoleInputAsync(IAsyncStreamReader<ConsoleInput> requestStream, DomainConsole console, CancellationToken cancellationToken)
    {
        try
        {
            while (await requestStream.MoveNext(cancellationToken).ConfigureAwait(false))
            {
                var message = requestStream.Current;
                if (message.InputCase != ConsoleInput.InputOneofCase.Data)
                {
                    return new RpcException(new Status(StatusCode.InvalidArgument, "attach comes once, first; after it send only data"));
                }

                if (message.Data.Length > MaxConsoleInput)
                {
                    return new RpcException(new Status(StatusCode.InvalidArgument, $"a data message carries at most {MaxConsoleInput} bytes; this one has {message.Data.Length}: split it"));
                }

                await console.WriteAsync(message.Data.Memory, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException or LibvirtException or ObjectDisposedException)
        {
            // The call or the console is ending (client gone, console closed): the output side reports it.
        }

        // The caller finished typing (pipe mode's end of input): the guest's output keeps coming.
        return null;
    }

    private static Status ConsoleClosed(Guid uuid, LibvirtException? error) => new(StatusCode.Unavailable,
        $"the console of instance {uuid} closed: the guest stopped or libvirt closed the stream{(error is null ? string.Empty : $" ({error.LibvirtMessage})")}; attach again once it runs");

    private Task<InstanceReply> Submit(InstanceRequest request, Command command, ServerCallContext context) =>
        ledger.OnceAsync(request.RequestId, async () =>
            Reply(await Engine.SubmitAsync(ParseUuid(request.InstanceUuid), command, context.CancellationToken).ConfigureAwait(false)));

    private async Task<Instance> WithFaultAsync(InstanceRecord record, CancellationToken cancellationToken)
    {
        var faults = runtime.Store is { } store ? await store.ListFaultsAsync(record.Uuid, cancellationToken).ConfigureAwait(false) : [];
        return record.ToApi(faults.Count > 0 ? faults[^1] : null);
    }

    private static InstanceReply Reply(InstanceRecord record) => new() { Instance = record.ToApi() };

    private static Guid ParseUuid(string text) =>
        Guid.TryParse(text, out var uuid) && uuid != Guid.Empty
            ? uuid
            : throw new InvalidInstanceSpecException("instance_uuid", text, "a UUID such as 3f2c8a6e-0d1b-4c1e-9a52-7b6f1e0c2d4a");

    private static Instances.Model.Port ToPort(Api.V1.Port port, int index)
    {
        var field = $"ports[{index}]";
        var vifType = port.VifType switch
        {
            "bridge" => VifType.Bridge,
            "ethernet" => VifType.Ethernet,
            "ovs" => VifType.Ovs,
            "vhostuser" => VifType.VhostUser,
            _ => throw new InvalidInstanceSpecException(field + ".vif_type", port.VifType, "bridge, ethernet, ovs, vhostuser"),
        };
        return new Instances.Model.Port(port.Id, port.Mac, vifType)
        {
            DeviceName = string.IsNullOrEmpty(port.DeviceName) ? null : port.DeviceName,
            BridgeName = string.IsNullOrEmpty(port.Bridge) ? null : port.Bridge,
            Mtu = port.Mtu == 0 ? null : port.Mtu,
            Model = string.IsNullOrEmpty(port.Model) ? null : ImageProperties.ParseVifModel(field + ".model", port.Model),
            FixedIps = port.FixedIps.Select(ip => new PortAddress(ip.Cidr, string.IsNullOrEmpty(ip.Gateway) ? null : ip.Gateway)).ToList(),
            DnsNameservers = [.. port.DnsNameservers],
        };
    }

}
