namespace ComputeAgent.Cli;

/// <summary>A failure the CLI explains in one line and ends with an exit status (never a stack trace).</summary>
internal sealed class CliException : Exception
{
    /// <summary>The agent refused the call, or the task it started failed.</summary>
    public const int Failed = 1;

    /// <summary>The command line (or the settings file it reads the socket from) is not valid.</summary>
    public const int BadCommandLine = 2;

    /// <summary>No agent answers on the socket (missing, refused, no permission).</summary>
    public const int AgentUnreachable = 3;

    public CliException()
        : this(Failed, "failed")
    {
    }

    public CliException(string message)
        : this(Failed, message)
    {
    }

    public CliException(string message, Exception innerException)
        : base(message, innerException) => ExitCode = Failed;

    public CliException(int exitCode, string message)
        : base(message) => ExitCode = exitCode;

    public int ExitCode { get; }
}
