using System.Diagnostics;
using ComputeAgent.Api.V1;
using Google.Protobuf;

namespace ComputeAgent.Cli;

/// <summary>
/// Boots one instance through the agent with a key pair, user data and a config drive, waits for
/// it to be ACTIVE, then prints its serial console (GetConsoleOutput) until a given line appears.
/// </summary>
internal static class AgentSpawn
{
    private static readonly TimeSpan ConsoleBound = TimeSpan.FromMinutes(15);

    internal sealed record Options(string Socket, string ImageId, string Name, string? PublicKeyFile, string KeyName, string? UserDataFile, string? Until, int Vcpus, int RamMib, int RootGib);

    public static async Task<int> RunAsync(Options options, CancellationToken cancellationToken)
    {
        using var channel = AgentChannel.ForSocket(options.Socket);
        var client = new Api.V1.ComputeAgent.ComputeAgentClient(channel);
        await AgentWalk.GetHostWhenReadyAsync(client, cancellationToken);
        var uuid = Guid.NewGuid().ToString();
        var request = new SpawnRequest
        {
            InstanceUuid = uuid,
            Name = options.Name,
            Flavor = new Flavor { Name = "cli", Vcpus = options.Vcpus, RamMib = options.RamMib, RootGib = options.RootGib },
            ImageId = options.ImageId,
            ProjectId = "cli",
            UserId = "cli",
            ConfigDrive = true,
        };
        if (options.PublicKeyFile is { } keyFile)
        {
            request.KeyPair = new KeyPair { Name = options.KeyName, PublicKey = (await File.ReadAllTextAsync(keyFile, cancellationToken)).Trim() };
        }

        if (options.UserDataFile is { } userData)
        {
            request.UserData = ByteString.CopyFrom(await File.ReadAllBytesAsync(userData, cancellationToken));
        }

        var clock = Stopwatch.StartNew();
        var accepted = await client.SpawnAsync(request, cancellationToken: cancellationToken);
        Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:0.00}s  spawn {uuid}: {accepted.Instance.VmState} / {accepted.Instance.TaskState}");
        var done = await client.WaitInstanceAsync(new WaitInstanceRequest { InstanceUuid = uuid }, deadline: DateTime.UtcNow + TimeSpan.FromMinutes(10), cancellationToken: cancellationToken);
        Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:0.00}s  {done.VmState} / {done.PowerState}{(done.Fault is { } fault ? ": " + fault.Message : string.Empty)}");
        if (done.VmState != VmState.Active || options.Until is not { } until)
        {
            return done.VmState == VmState.Active ? 0 : 1;
        }

        // Print the console as it grows, until the line the caller waits for.
        var printed = 0;
        while (clock.Elapsed < ConsoleBound)
        {
            var output = await client.GetConsoleOutputAsync(new GetConsoleOutputRequest { InstanceUuid = uuid, Lines = 10_000 }, cancellationToken: cancellationToken);
            var lines = output.Output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
            for (; printed < lines.Count - 1; printed++)
            {
                Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:0.00}s  | {lines[printed]}");
                if (lines[printed].Contains(until, StringComparison.Ordinal))
                {
                    Console.WriteLine($"{clock.Elapsed.TotalSeconds,7:0.00}s  instance {uuid} is up; delete it with the agent's Delete call");
                    return 0;
                }
            }

            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        }

        Console.Error.WriteLine($"'{until}' did not appear on the console within {ConsoleBound}");
        return 1;
    }
}
