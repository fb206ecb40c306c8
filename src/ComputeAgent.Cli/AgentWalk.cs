using System.Diagnostics;
using ComputeAgent.Api.V1;
using Grpc.Core;

namespace ComputeAgent.Cli;

/// <summary>
/// The main job: one guest walked through its lifecycle by the agent, over its gRPC Unix socket,
/// printing every state change as WatchInstances streams it.
/// </summary>
internal static class AgentWalk
{
    private static readonly TimeSpan StepBound = TimeSpan.FromMinutes(3);

    public static async Task<int> RunAsync(string socketPath, string imageId, string? readyLine, CancellationToken cancellationToken)
    {
        using var channel = AgentChannel.ForSocket(socketPath);
        var client = new Api.V1.ComputeAgent.ComputeAgentClient(channel);
        var host = await GetHostWhenReadyAsync(client, cancellationToken);
        Console.WriteLine($"agent on {host.Hostname}: {host.HypervisorType} {host.HypervisorVersion}, libvirt {host.LibvirtVersion}, {host.Cpus} CPUs, {host.MemoryMib} MiB");

        var uuid = Guid.NewGuid().ToString();
        var clock = Stopwatch.StartNew();
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var watch = client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid }, cancellationToken: watching.Token);
        var printer = PrintAsync(watch.ResponseStream, clock, watching.Token);

        try
        {
            var request = new InstanceRequest { InstanceUuid = uuid };
            await StepAsync("spawn", () => client.SpawnAsync(new SpawnRequest
            {
                RequestId = Guid.NewGuid().ToString(),
                InstanceUuid = uuid,
                Name = "demo",
                Flavor = new Flavor { Name = "m1.tiny", Vcpus = 1, RamMib = 256, RootGib = 1 },
                ImageId = imageId,
                ProjectId = "demo-project",
                UserId = "demo-user",
            }).ResponseAsync);
            await GuestReadyAsync(1);
            await StepAsync("pause", () => client.PauseAsync(request).ResponseAsync);
            await StepAsync("unpause", () => client.UnpauseAsync(request).ResponseAsync);
            await StepAsync("suspend", () => client.SuspendAsync(request).ResponseAsync);
            await StepAsync("resume", () => client.ResumeAsync(request).ResponseAsync);
            await StepAsync("rescue", () => client.RescueAsync(new RescueRequest { InstanceUuid = uuid }).ResponseAsync);
            await GuestReadyAsync(2);
            await StepAsync("unrescue", () => client.UnrescueAsync(request).ResponseAsync);
            await GuestReadyAsync(3);
            await StepAsync("resize", () => client.ResizeAsync(new ResizeRequest
            {
                InstanceUuid = uuid,
                Flavor = new Flavor { Name = "m1.small", Vcpus = 2, RamMib = 512, RootGib = 2 },
            }).ResponseAsync);
            await GuestReadyAsync(4);
            await StepAsync("confirm resize", () => client.ConfirmResizeAsync(request).ResponseAsync);
            await StepAsync("set admin password", () => client.SetAdminPasswordAsync(new SetAdminPasswordRequest { InstanceUuid = uuid, AdminPassword = "demo-password" }, deadline: DateTime.UtcNow + StepBound).ResponseAsync);
            var snapshot = await ImageStepAsync("snapshot", () => client.SnapshotAsync(new SnapshotRequest { InstanceUuid = uuid, Name = "demo-snapshot" }).ResponseAsync);
            await ImageStepAsync("backup", () => client.BackupAsync(new BackupRequest { InstanceUuid = uuid, Name = "demo-backup", BackupType = "daily", Rotation = 1 }).ResponseAsync);
            await StepAsync("rebuild (from the snapshot)", () => client.RebuildAsync(new RebuildRequest { InstanceUuid = uuid, ImageId = snapshot }).ResponseAsync);
            await GuestReadyAsync(5);
            await StepAsync("soft delete", () => client.SoftDeleteAsync(request).ResponseAsync);
            await StepAsync("restore", () => client.RestoreAsync(request).ResponseAsync);
            await GuestReadyAsync(6);
            await StepAsync("stop", () => client.StopAsync(new StopRequest { InstanceUuid = uuid }).ResponseAsync);
            await StepAsync("start", () => client.StartAsync(request).ResponseAsync);
            await StepAsync("reboot (hard)", () => client.RebootAsync(new RebootRequest { InstanceUuid = uuid, Hard = true }).ResponseAsync);
            await StepAsync("delete", () => client.DeleteAsync(request).ResponseAsync);
            Console.WriteLine($"done in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        }
        catch (RpcException ex)
        {
            Console.Error.WriteLine($"FAILED: {ex.StatusCode}: {ex.Status.Detail}");
            return 1;
        }
        finally
        {
            await watching.CancelAsync();
            await printer;
        }

        // A graceful stop needs the guest's ACPI handling up: wait for its boot number N to print
        // the ready line on the console (the log keeps every boot of the instance).
        async Task GuestReadyAsync(int boot)
        {
            if (readyLine is null)
            {
                return;
            }

            var deadline = DateTime.UtcNow + StepBound;
            while ((await client.GetConsoleOutputAsync(new GetConsoleOutputRequest { InstanceUuid = uuid, Lines = 10_000 }, cancellationToken: cancellationToken)).Output.Split('\n').Count(l => l == readyLine) < boot)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"the guest never printed '{readyLine}' on its console"));
                }

                await Task.Delay(200, cancellationToken);
            }

            Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:F2}s  guest console: {readyLine} (boot {boot})");
        }

        async Task<string> ImageStepAsync(string step, Func<Task<SnapshotReply>> call)
        {
            string? image = null;
            await StepAsync(step, async () =>
            {
                var reply = await call();
                image = reply.ImageId;
                return new InstanceReply { Instance = reply.Instance };
            });
            Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:F2}s  {step} uploaded as image {image}");
            return image!;
        }

        async Task StepAsync(string step, Func<Task<InstanceReply>> call)
        {
            var reply = await call();
            Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:F2}s  > {step}: accepted, {reply.Instance.VmState} / {reply.Instance.TaskState}");
            var done = await client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow + StepBound, cancellationToken: cancellationToken);
            if (done.Fault is { } fault && done.VmState == VmState.Error)
            {
                throw new RpcException(new Status(StatusCode.Aborted, $"{step} left the instance in ERROR: {fault.Message}"));
            }
        }
    }

    internal static async Task<Host> GetHostWhenReadyAsync(Api.V1.ComputeAgent.ComputeAgentClient client, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                return await client.GetHostAsync(new GetHostRequest(), cancellationToken: cancellationToken);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.Unavailable && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, cancellationToken);
            }
        }
    }

    private static async Task PrintAsync(IAsyncStreamReader<InstanceEvent> events, Stopwatch clock, CancellationToken cancellationToken)
    {
        try
        {
            while (await events.MoveNext(cancellationToken))
            {
                var e = events.Current;
                Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:F2}s    #{e.Sequence,-4} {e.VmState,-10} {e.TaskState,-20} {e.PowerState,-10} ({e.Cause})");
            }
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled)
        {
        }
        catch (OperationCanceledException)
        {
        }
    }
}
