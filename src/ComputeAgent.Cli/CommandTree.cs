using System.CommandLine;
using System.CommandLine.Parsing;

namespace ComputeAgent.Cli;

/// <summary>compute-agent-cli's commands: the operator's (inspect, lifecycle), `demo`, `completion`.</summary>
internal static class CommandTree
{
    public static RootCommand Build()
    {
        var root = new RootCommand("compute-agent-cli: an operator's view of one compute-agent host over its Unix socket: list, show and follow instances, drive their lifecycle, read the host, a console log and the agent's health.");
        foreach (var command in InspectCommands.All().Concat(LifecycleCommands.All()))
        {
            root.Add(command);
        }

        root.Add(ConsoleCommand.Build());
        root.Add(DemoCommands.Build());
        root.Add(BashCompletion.Build(root));

        // `compute-agent-cli [diagram] ARGS` shows how a command line parses, without running it
        // (exit 1 when it does not parse); the tests check the documents' examples with it.
        root.Add(new DiagramDirective());
        return root;
    }

    /// <summary>"compute-agent-cli demo walk": the command a parse stopped in, as typed.</summary>
    public static string PathOf(CommandResult command)
    {
        var names = new List<string>();
        for (SymbolResult? at = command; at is not null; at = at.Parent)
        {
            if (at is CommandResult c)
            {
                names.Insert(0, c.Command is RootCommand ? "compute-agent-cli" : c.Command.Name);
            }
        }

        return string.Join(' ', names);
    }
}
