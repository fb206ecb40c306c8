using System.CommandLine;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Grpc.Core;
using Grpc.Net.Client;

namespace ComputeAgent.Cli;

/// <summary>
/// One command's connection to the agent: the socket it resolved, the client, and the one place
/// where a failed call becomes a line on standard error and an exit status.
/// </summary>
internal sealed partial class AgentSession : IDisposable
{
    private readonly GrpcChannel channel;

    private AgentSession(string socketPath)
    {
        SocketPath = socketPath;
        channel = AgentChannel.ForSocket(socketPath);
        Client = new Api.V1.ComputeAgent.ComputeAgentClient(channel);
    }

    public string SocketPath { get; }

    public GrpcChannel Channel => channel;

    public Api.V1.ComputeAgent.ComputeAgentClient Client { get; }

    /// <summary>--socket, on every command that calls the agent.</summary>
    public static Option<string?> SocketOption() => new("--socket")
    {
        Description = $"The agent's Unix socket. Default: Agent:UnixSocketPath from {AgentChannel.ConfigFile} (or the file COMPUTE_AGENT_CONFIG names), else {AgentChannel.DefaultSocket}.",
        HelpName = "PATH",
    };

    /// <summary>--json, on every command that prints what the agent answered.</summary>
    public static Option<bool> JsonOption() => new("--json")
    {
        Description = "Print the agent's answer as JSON (the proto's field names, every field present) instead of a table.",
    };

    /// <summary>
    /// A command that calls the agent: <paramref name="body"/> with a session on the socket, every
    /// way the call can fail turned into a message and an exit status.
    /// </summary>
    public static Command AgentCommand(string name, string description, Func<ParseResult, AgentSession, bool, CancellationToken, Task<int>> body, params Symbol[] symbols)
    {
        var command = new Command(name, description);
        var socket = SocketOption();
        var json = JsonOption();
        foreach (var symbol in symbols)
        {
            switch (symbol)
            {
                case Argument argument:
                    command.Add(argument);
                    break;
                case Option option:
                    command.Add(option);
                    break;
                default:
                    throw new ArgumentException($"{symbol.Name} is neither an argument nor an option", nameof(symbols));
            }
        }

        command.Add(socket);
        command.Add(json);
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(socket), session => body(parse, session, parse.GetValue(json), cancellationToken)));
        return command;
    }

    public static async Task<int> RunAsync(string? socket, Func<AgentSession, Task<int>> body)
    {
        var path = socket;
        try
        {
            path = AgentChannel.ResolveSocket(socket);
            using var session = new AgentSession(path);
            return await body(session);
        }
        catch (CliException e)
        {
            await Console.Error.WriteLineAsync($"compute-agent-cli: {e.Message}");
            return e.ExitCode;
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
        {
            return 130;
        }
        catch (RpcException e)
        {
            var (code, message) = Explain(e, path ?? AgentChannel.DefaultSocket);
            await Console.Error.WriteLineAsync($"compute-agent-cli: {message}");
            return code;
        }
        catch (OperationCanceledException)
        {
            // Ctrl-C: what was printed stands; 130 as a shell reports SIGINT.
            return 130;
        }
    }

    /// <summary>The exit status and the line for a failed call: whether the agent was reached at all, and what it said.</summary>
    public static (int ExitCode, string Message) Explain(RpcException e, string socket)
    {
        if (e.StatusCode == StatusCode.Unavailable && SocketProblem(e) is { } problem)
        {
            return (CliException.AgentUnreachable, problem.SocketErrorCode switch
            {
                SocketError.AccessDenied => $"permission denied on {socket}: run as root or as a member of the socket's group (Agent:Callers:SocketGroup; compute-agent as packaged: usermod -aG compute-agent USER, then log in again)",
                SocketError.ConnectionRefused => $"nothing answers on {socket}: the agent is not running (systemctl start compute-agent; journalctl -u compute-agent says why it stopped)",
                _ when !File.Exists(socket) => $"no agent socket at {socket}: the agent is not running (systemctl status compute-agent), or it listens elsewhere: pass --socket PATH",
                _ => $"cannot connect to {socket}: {problem.Message}",
            });
        }

        return (CliException.Failed, $"the agent answered {CodeName(e.StatusCode)}: {e.Status.Detail}");
    }

    /// <summary>FailedPrecondition -> FAILED_PRECONDITION, as gRPC names its codes.</summary>
    public static string CodeName(StatusCode code) => CamelHump().Replace(code.ToString(), "$1_$2").ToUpperInvariant();

    public void Dispose() => channel.Dispose();

    private static SocketException? SocketProblem(RpcException e)
    {
        for (var inner = e.Status.DebugException; inner is not null; inner = inner.InnerException)
        {
            if (inner is SocketException socket)
            {
                return socket;
            }
        }

        return null;
    }

    [GeneratedRegex("([a-z])([A-Z])")]
    private static partial Regex CamelHump();
}
