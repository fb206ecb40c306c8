using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using ComputeAgent.Cli;

var root = CommandTree.Build();
var parse = root.Parse(args);
if (parse.Action is ParseErrorAction)
{
    // A command line the tree does not take: say what and where help is, exit 2 (usage), no help dump.
    foreach (var error in parse.Errors)
    {
        await Console.Error.WriteLineAsync($"compute-agent-cli: {error.Message}");
    }

    await Console.Error.WriteLineAsync($"see: {CommandTree.PathOf(parse.CommandResult)} --help");
    return CliException.BadCommandLine;
}

try
{
    return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
#pragma warning disable CA1031 // the last line of defence: whatever escaped a command is one line, never a stack trace
catch (Exception e)
#pragma warning restore CA1031
{
    await Console.Error.WriteLineAsync($"compute-agent-cli: {e.GetType().Name}: {e.Message}");
    return CliException.Failed;
}
