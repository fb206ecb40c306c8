using System.CommandLine;
using System.Text;
using ComputeAgent.Api.V1;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Win32.SafeHandles;

namespace ComputeAgent.Cli;

/// <summary>
/// `compute-agent-cli console UUID`: the guest's serial console through AttachConsole. On a
/// terminal, raw mode until Ctrl-] (as `virsh console`); with standard input from a pipe or file,
/// that input is typed into the guest and its output printed until the console closes, Ctrl-C or
/// --until's text.
/// </summary>
internal static class ConsoleCommand
{
    /// <summary>Ctrl-] (GS), the byte that leaves an interactive console, as in telnet and virsh.</summary>
    private const byte LeaveKey = 0x1d;

    public static Command Build()
    {
        var uuid = InspectCommands.Uuid();
        var force = new Option<bool>("--force") { Description = "Take the console from the session that holds it (that session ends, ABORTED)." };
        var until = new Option<string?>("--until")
        {
            Description = "Exit 0 once the guest has printed this text (for scripts; the console otherwise runs until Ctrl-] on a terminal, Ctrl-C, or the guest's console closes).",
            HelpName = "TEXT",
        };
        var socket = AgentSession.SocketOption();
        var command = new Command("console", "The guest's serial console, interactive: a terminal in raw mode, Ctrl-] leaves. With standard input from a pipe, it is typed into the guest and the guest's output printed.")
        {
            uuid, force, until, socket,
        };
        command.SetAction((parse, cancellationToken) => AgentSession.RunAsync(parse.GetValue(socket), agent =>
            RunAsync(agent, parse.GetRequiredValue(uuid), parse.GetValue(force), parse.GetValue(until), cancellationToken)));
        return command;
    }

    private static async Task<int> RunAsync(AgentSession agent, string uuid, bool force, string? until, CancellationToken cancellationToken)
    {
        using var leave = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var call = agent.Client.AttachConsole(cancellationToken: leave.Token);
        await call.RequestStream.WriteAsync(new ConsoleInput { Attach = new ConsoleAttach { InstanceUuid = uuid, Force = force } }, cancellationToken);
        var interactive = !Console.IsInputRedirected;
        if (interactive)
        {
            // Before raw mode: .NET sets up its console on first use, and must see the terminal as it was.
            await Console.Error.WriteLineAsync($"Console of instance {uuid}; Ctrl-] leaves.");
        }

        using var terminal = interactive ? RawTerminal.Enter() : null;

        var keyboard = Task.Run(() => TypeAsync(call.RequestStream, interactive, leave), CancellationToken.None);
        var printed = await PrintAsync(call.ResponseStream, until, leave.Token, cancellationToken);
        await leave.CancelAsync();
        if (keyboard.IsCompletedSuccessfully && keyboard.Result)
        {
            return 0;
        }

        return printed;
    }

    /// <summary>Copies standard input to the guest; true when the user left with Ctrl-].</summary>
    private static async Task<bool> TypeAsync(IClientStreamWriter<ConsoleInput> guest, bool interactive, CancellationTokenSource leave)
    {
        var buffer = new byte[4096];
        // fd 0 itself: .NET's console stream edits a terminal's input a line at a time (and echoes it),
        // which would hold Ctrl-] and every key back until Enter.
        await using var input = new FileStream(new SafeFileHandle(0, ownsHandle: false), FileAccess.Read, bufferSize: 0);
        try
        {
            while (true)
            {
                var read = await input.ReadAsync(buffer, leave.Token);
                if (read == 0)
                {
                    // Pipe mode's end of input: say so, and keep printing what the guest answers.
                    await guest.CompleteAsync();
                    return false;
                }

                var keys = buffer.AsMemory(0, read);
                var at = interactive ? keys.Span.IndexOf(LeaveKey) : -1;
                if (at >= 0)
                {
                    keys = keys[..at];
                }

                if (!keys.IsEmpty)
                {
                    await guest.WriteAsync(new ConsoleInput { Data = ByteString.CopyFrom(keys.Span) }, leave.Token);
                }

                if (at >= 0)
                {
                    await leave.CancelAsync();
                    return true;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or RpcException or InvalidOperationException)
        {
            // The call ended (the guest's console closed, or we left): the printing side tells why.
            return false;
        }
    }

    /// <summary>Prints the guest's output until the call ends; 0 when it ended with OK or --until's text was seen.</summary>
    private static async Task<int> PrintAsync(IAsyncStreamReader<ConsoleData> guest, string? until, CancellationToken leave, CancellationToken cancellationToken)
    {
        await using var output = Console.OpenStandardOutput();
        var wanted = string.IsNullOrEmpty(until) ? null : Encoding.UTF8.GetBytes(until);
        var seen = new List<byte>();
        try
        {
            while (await guest.MoveNext(leave))
            {
                var data = guest.Current.Data.Memory;
                await output.WriteAsync(data, cancellationToken);
                await output.FlushAsync(cancellationToken);
                if (wanted is not null)
                {
                    // Keep just enough of the past output for a match that spans two messages.
                    seen.AddRange(data.Span);
                    if (seen.ToArray().AsSpan().IndexOf(wanted) >= 0)
                    {
                        return 0;
                    }

                    seen.RemoveRange(0, Math.Max(0, seen.Count - wanted.Length + 1));
                }
            }

            return 0;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && leave.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // We left (Ctrl-]): the call was cancelled on purpose.
            return 0;
        }
        catch (OperationCanceledException) when (leave.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
    }

    /// <summary>The terminal in raw mode while it lives; its settings restored on dispose, whatever ended the console.</summary>
    private sealed class RawTerminal : IDisposable
    {
        private readonly byte[] saved;

        private RawTerminal(byte[] saved) => this.saved = saved;

        public static RawTerminal Enter()
        {
            var saved = Interop.Libc.SaveTerminal();
            if (saved is null || !Interop.Libc.MakeTerminalRaw(saved))
            {
                throw new CliException("cannot put the terminal in raw mode; pipe the input instead (compute-agent-cli console UUID < commands)");
            }

            return new RawTerminal(saved);
        }

        public void Dispose() => Interop.Libc.RestoreTerminal(saved);
    }
}
