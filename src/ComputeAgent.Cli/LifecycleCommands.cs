using System.CommandLine;
using System.Text;
using ComputeAgent.Api.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Client = ComputeAgent.Api.V1.ComputeAgent.ComputeAgentClient;

namespace ComputeAgent.Cli;

/// <summary>
/// One command per mutating call of the proto but Spawn (Nova's job; `demo spawn` for a hand-made
/// guest). Each prints the agent's immediate answer; with --wait it prints the task's state
/// changes until the task ends and exits 1 with the fault when it failed.
/// </summary>
internal static class LifecycleCommands
{
    public static IEnumerable<Command> All() =>
    [
        Plain("pause", "Pauses the guest's vCPUs in memory: PAUSING -> PAUSED.", (c, r, o) => c.PauseAsync(r, o)),
        Plain("unpause", "Resumes a paused guest: UNPAUSING -> ACTIVE.", (c, r, o) => c.UnpauseAsync(r, o)),
        Plain("suspend", "Saves the guest's memory to disk and stops it: SUSPENDING -> SUSPENDED.", (c, r, o) => c.SuspendAsync(r, o)),
        Plain("resume", "Restores a suspended guest: RESUMING -> ACTIVE.", (c, r, o) => c.ResumeAsync(r, o)),
        Rescue(),
        Plain("unrescue", "Boots the original domain again: UNRESCUING -> ACTIVE.", (c, r, o) => c.UnrescueAsync(r, o)),
        Resize(),
        Plain("confirm-resize", "Keeps the new flavor and drops the saved disk: RESIZE_CONFIRMING -> ACTIVE.", (c, r, o) => c.ConfirmResizeAsync(r, o)),
        Plain("revert-resize", "Puts the saved disk and the old flavor back: RESIZE_REVERTING -> ACTIVE.", (c, r, o) => c.RevertResizeAsync(r, o)),
        Plain("start", "Boots a stopped guest: POWERING_ON -> ACTIVE.", (c, r, o) => c.StartAsync(r, o)),
        Stop(),
        Reboot(),
        Rebuild(),
        SetPassword(),
        Snapshot(),
        Backup(),
        Plain("soft-delete", "Powers the guest off and keeps everything (SOFT_DELETED) until restore, force-delete or the reclaim pass.", (c, r, o) => c.SoftDeleteAsync(r, o)),
        Plain("restore", "Boots a SOFT_DELETED instance again: RESTORING -> ACTIVE.", (c, r, o) => c.RestoreAsync(r, o)),
        Plain("force-delete", "Deletes a SOFT_DELETED instance at once.", (c, r, o) => c.ForceDeleteAsync(r, o)),
        Plain("delete", "Deletes the instance in any state (it preempts a running task): DELETING -> DELETED; the domain and the instance folder are removed.", (c, r, o) => c.DeleteAsync(r, o)),
    ];

    private static Command Plain(string name, string description, Func<Client, InstanceRequest, CallOptions, AsyncUnaryCall<InstanceReply>> call) =>
        Lifecycle(name, description, async (_, client, uuid, options) => await call(client, new InstanceRequest { InstanceUuid = uuid }, options));

    private static Command Rescue()
    {
        var image = new Option<string?>("--image") { Description = "The image the rescue disk is made from; default: the instance's own.", HelpName = "IMAGE_ID" };
        return Lifecycle("rescue", "Boots a rescue disk with the root disk attached second: RESCUING -> RESCUED.", async (parse, client, uuid, options) =>
            await client.RescueAsync(new RescueRequest { InstanceUuid = uuid, ImageId = parse.GetValue(image) ?? string.Empty }, options), image);
    }

    private static Command Resize()
    {
        var vcpus = new Option<int?>("--vcpus") { Description = "Virtual CPUs.", HelpName = "N" };
        var ram = new Option<int?>("--ram-mib") { Description = "Memory in MiB.", HelpName = "MIB" };
        var root = new Option<int?>("--root-gib") { Description = "Root disk in GiB (never smaller than now).", HelpName = "GIB" };
        var ephemeral = new Option<int?>("--ephemeral-gib") { Description = "Ephemeral disk in GiB.", HelpName = "GIB" };
        var swap = new Option<int?>("--swap-gib") { Description = "Swap disk in GiB.", HelpName = "GIB" };
        var flavorName = new Option<string?>("--flavor") { Description = "The new flavor's name.", HelpName = "NAME" };
        return Lifecycle("resize", "Resizes on this host: the current flavor with the sizes given changed. RESIZE_PREP ... -> RESIZED; then confirm-resize or revert-resize.", async (parse, client, uuid, options) =>
        {
            Option<int?>[] sizes = [vcpus, ram, root, ephemeral, swap];
            if (sizes.All(s => parse.GetValue(s) is null) && parse.GetValue(flavorName) is null)
            {
                throw new CliException(CliException.BadCommandLine, "resize needs at least one of --vcpus, --ram-mib, --root-gib, --ephemeral-gib, --swap-gib, --flavor");
            }

            var flavor = (await client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid }, options)).Flavor?.Clone() ?? new Flavor();
            flavor.Vcpus = parse.GetValue(vcpus) ?? flavor.Vcpus;
            flavor.RamMib = parse.GetValue(ram) ?? flavor.RamMib;
            flavor.RootGib = parse.GetValue(root) ?? flavor.RootGib;
            flavor.EphemeralGib = parse.GetValue(ephemeral) ?? flavor.EphemeralGib;
            flavor.SwapGib = parse.GetValue(swap) ?? flavor.SwapGib;
            flavor.Name = parse.GetValue(flavorName) ?? flavor.Name;
            return await client.ResizeAsync(new ResizeRequest { InstanceUuid = uuid, Flavor = flavor }, options);
        }, vcpus, ram, root, ephemeral, swap, flavorName);
    }

    private static Command Stop()
    {
        var timeout = new Option<int?>("--timeout")
        {
            Description = "Seconds the guest has to power off after the ACPI request before it is destroyed (0: at once); default: the agent's Agent:GracefulStopTimeoutSeconds.",
            HelpName = "SECONDS",
        };
        return Lifecycle("stop", "ACPI power button, then destroy after the graceful timeout: POWERING_OFF -> STOPPED.", async (parse, client, uuid, options) =>
            await client.StopAsync(new StopRequest { InstanceUuid = uuid, GracefulTimeout = parse.GetValue(timeout) is { } seconds ? Duration.FromTimeSpan(TimeSpan.FromSeconds(seconds)) : null }, options), timeout);
    }

    private static Command Reboot()
    {
        var hard = new Option<bool>("--hard") { Description = "Destroy and start instead of an ACPI reboot." };
        return Lifecycle("reboot", "Reboots the guest: ACPI (REBOOTING; hard if the guest ignores it) or with --hard destroy and start (REBOOTING_HARD) -> ACTIVE.", async (parse, client, uuid, options) =>
            await client.RebootAsync(new RebootRequest { InstanceUuid = uuid, Hard = parse.GetValue(hard) }, options), hard);
    }

    private static Command Rebuild()
    {
        var image = new Option<string?>("--image") { Description = "The image to rebuild from; default: the instance's own image again.", HelpName = "IMAGE_ID" };
        return Lifecycle("rebuild", "A new root disk from the image, the domain regenerated from its metadata, booted: REBUILDING -> REBUILD_SPAWNING -> ACTIVE.", async (parse, client, uuid, options) =>
        {
            var imageId = parse.GetValue(image) ?? (await client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = uuid }, options)).ImageId;
            return await client.RebuildAsync(new RebuildRequest { InstanceUuid = uuid, ImageId = imageId }, options);
        }, image);
    }

    private static Command SetPassword()
    {
        var user = new Option<string?>("--user") { Description = "The guest account; default: root.", HelpName = "USER" };
        return Lifecycle("set-password", "Sets a guest account's password through the QEMU guest agent. The password is read from standard input (one line), never from the command line.", async (parse, client, uuid, options) =>
            await client.SetAdminPasswordAsync(new SetAdminPasswordRequest { InstanceUuid = uuid, User = parse.GetValue(user) ?? string.Empty, AdminPassword = ReadPassword() }, options), user);
    }

    private static Command Snapshot()
    {
        var name = new Argument<string>("NAME") { Description = "The new image's name." };
        return Lifecycle("snapshot", "Uploads a copy of the root disk to the image service as a new image (printed at once); the guest keeps running.", async (parse, client, uuid, options) =>
            await client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid, Name = parse.GetRequiredValue(name) }, options), name);
    }

    private static Command Backup()
    {
        var name = new Argument<string>("NAME") { Description = "The new image's name." };
        var type = new Option<string>("--type") { Description = "The backup type, e.g. daily or weekly.", HelpName = "TYPE", DefaultValueFactory = _ => "daily" };
        var rotation = new Option<int>("--rotation") { Description = "How many backups of this instance and type to keep, the new one included.", HelpName = "N", Required = true };
        return Lifecycle("backup", "A snapshot with image_type=backup; then the oldest backups of the instance and type beyond --rotation are deleted.", async (parse, client, uuid, options) =>
            await client.BackupAsync(new BackupRequest { InstanceUuid = uuid, Name = parse.GetRequiredValue(name), BackupType = parse.GetValue(type), Rotation = parse.GetValue(rotation) }, options), name, type, rotation);
    }

    private static Command Lifecycle(string name, string description, Func<ParseResult, Client, string, CallOptions, Task<IMessage>> send, params Symbol[] symbols)
    {
        var uuid = InspectCommands.Uuid();
        var wait = new Option<bool>("--wait") { Description = "Print the task's state changes until it ends; exit 1 with the fault when it failed." };
        return AgentSession.AgentCommand(name, description, async (parse, agent, json, cancellationToken) =>
        {
            var id = parse.GetRequiredValue(uuid);
            var options = new CallOptions(cancellationToken: cancellationToken);

            // Where the log stands before the command: the task's changes are exactly those after it.
            long? mark = null;
            if (parse.GetValue(wait))
            {
                await agent.Client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = id }, options);
                mark = await EventLog.LastSequenceAsync(agent.Client, id, cancellationToken);
            }

            var reply = await send(parse, agent.Client, id, options);
            var accepted = reply switch
            {
                InstanceReply r => r.Instance,
                SnapshotReply r => r.Instance,
                _ => throw new InvalidOperationException($"unexpected reply {reply.Descriptor.Name}"),
            };
            if (json)
            {
                Output.WriteJsonLine(reply);
            }
            else
            {
                Console.Out.WriteLine($"{name} accepted: {id} {Output.Name(accepted.VmState)} / {Output.Name(accepted.TaskState)}{(reply is SnapshotReply s ? $", image {s.ImageId}" : string.Empty)}");
            }

            return parse.GetValue(wait) ? await WaitAsync(name, agent.Client, accepted, mark, json, cancellationToken) : 0;
        }, [uuid, .. symbols, wait]);
    }

    /// <summary>
    /// Prints the task's changes (those after <paramref name="mark"/>) until task_state is none
    /// again, then judges the end: ERROR, or a fault recorded since the command was accepted, is a failure.
    /// </summary>
    private static async Task<int> WaitAsync(string name, Client client, Instance accepted, long? mark, bool json, CancellationToken cancellationToken)
    {
        if (mark is { } after)
        {
            // A command done before its answer (set-password) has its whole task in the log already.
            var follow = accepted.TaskState != TaskState.None;
            var inTask = false;
            await foreach (var e in EventLog.ReadAsync(client, accepted.Uuid, after, follow, cancellationToken))
            {
                if (json)
                {
                    Output.WriteJsonLine(e);
                }
                else
                {
                    Console.Out.WriteLine(Output.EventLine(e));
                }

                // Changes logged before the command's own (a power sync) do not end the wait.
                if (e.TaskState != TaskState.None)
                {
                    inTask = true;
                }
                else if (inTask)
                {
                    break;
                }
            }
        }
        else
        {
            // No live instance to mark the log with (a deleted one): wait without the changes.
            await client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = accepted.Uuid }, cancellationToken: cancellationToken);
        }

        var end = await client.GetInstanceAsync(new GetInstanceRequest { InstanceUuid = accepted.Uuid }, cancellationToken: cancellationToken);
        var fault = end.Fault is { CreatedAt: { } at } f && accepted.UpdatedAt is { } acceptedAt && at >= acceptedAt ? f : null;
        if (json)
        {
            Output.WriteJsonLine(end);
        }

        if (end.VmState == VmState.Error || fault is not null)
        {
            var why = (fault ?? end.Fault) is { } shown ? $"{shown.Code}: {shown.Message}" : "the agent recorded no fault";
            throw new CliException(CliException.Failed, $"{name} failed: {end.Uuid} is {Output.Name(end.VmState)} / {Output.Name(end.PowerState)}: {why}");
        }

        if (!json)
        {
            Console.Out.WriteLine($"{name} done: {end.Uuid} {Output.Name(end.VmState)} / {Output.Name(end.TaskState)} / {Output.Name(end.PowerState)}");
        }

        return 0;
    }

    /// <summary>One line from standard input; at a terminal, typed without echo.</summary>
    private static string ReadPassword()
    {
        if (Console.IsInputRedirected)
        {
            return Console.In.ReadLine() ?? throw new CliException(CliException.BadCommandLine, "set-password reads the password from standard input, which is empty");
        }

        Console.Error.Write("password: ");
        var typed = new StringBuilder();
        for (var key = Console.ReadKey(intercept: true); key.Key != ConsoleKey.Enter; key = Console.ReadKey(intercept: true))
        {
            if (key.Key == ConsoleKey.Backspace)
            {
                typed.Length = Math.Max(0, typed.Length - 1);
            }
            else if (!char.IsControl(key.KeyChar))
            {
                typed.Append(key.KeyChar);
            }
        }

        Console.Error.WriteLine();
        return typed.ToString();
    }
}
