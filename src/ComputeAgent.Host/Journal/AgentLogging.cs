using System.Globalization;
using Serilog;
using Serilog.Events;

namespace ComputeAgent.Host.Journal;

/// <summary>Where the agent's log goes: journald's native protocol under systemd (or when asked), the console otherwise.</summary>
public static class AgentLogging
{
    public const string Identifier = "compute-agent";

    /// <summary>
    /// auto picks the journal when systemd connected the agent's output to it (JOURNAL_STREAM, as
    /// sd_journal_stream_fd documents) and the native socket is there; that is how a unit runs.
    /// </summary>
    public static bool UsesJournal(AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.LogTarget switch
        {
            "journal" => true,
            "console" => false,
            _ => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM")) && File.Exists(options.JournalSocketPath),
        };
    }

    public static LoggerConfiguration Configure(LoggerConfiguration configuration, AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(options);
        configuration
            .MinimumLevel.Information()
            // One line per gRPC request is noise in the journal; ASP.NET Core's warnings still come through.
            .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
            // The host's "Hosting failed to start" with a stack trace, for a start the agent ends itself
            // (a stop while starting, a damaged state database): Program says why in one line.
            .Filter.ByExcluding(e => e.Exception is { } exception && AgentRuntime.IsStartRefusal(exception)
                && e.Properties.TryGetValue("SourceContext", out var source) && source is ScalarValue { Value: "Microsoft.Extensions.Hosting.Internal.Host" })
            .Enrich.FromLogContext();
        return UsesJournal(options)
            ? configuration.WriteTo.Sink(new JournalSink(new JournalSocket(options.JournalSocketPath), Identifier))
            : configuration.WriteTo.Console(
                outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} {SourceContext}: {Message:lj}{NewLine}{Exception}",
                formatProvider: CultureInfo.InvariantCulture);
    }
}
