using System.Globalization;
using System.Net.Sockets;
using Serilog.Core;
using Serilog.Debugging;
using Serilog.Events;
using Serilog.Formatting.Display;

namespace ComputeAgent.Host.Journal;

/// <summary>
/// Writes each log event to journald as its own entry: MESSAGE (rendered, strings unquoted),
/// PRIORITY (syslog level), SYSLOG_IDENTIFIER, every structured property as its own field
/// (InstanceUuid → INSTANCE_UUID) so that <c>journalctl INSTANCE_UUID=…</c> finds one instance's
/// story, and EXCEPTION with the whole exception.
/// </summary>
public sealed class JournalSink : ILogEventSink, IDisposable
{
    // Fields this sink writes itself: a property of the same name gets a prefix instead of a second value.
    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "EXCEPTION", "EXCEPTION_TYPE", "MESSAGE_TEMPLATE", "EVENT_ID", "EVENT_NAME",
    };

    private static readonly MessageTemplateTextFormatter MessageFormat = new("{Message:l}", CultureInfo.InvariantCulture);

    private readonly JournalSocket socket;
    private readonly string identifier;

    public JournalSink(JournalSocket socket, string identifier)
    {
        this.socket = socket ?? throw new ArgumentNullException(nameof(socket));
        this.identifier = identifier ?? throw new ArgumentNullException(nameof(identifier));
    }

    /// <summary>The syslog priority journald stores for a Serilog level (sd-daemon.h's LOG_*).</summary>
    public static int Priority(LogEventLevel level) => level switch
    {
        LogEventLevel.Fatal => 2,
        LogEventLevel.Error => 3,
        LogEventLevel.Warning => 4,
        LogEventLevel.Information => 6,
        _ => 7,
    };

    public static JournalEntry ToEntry(LogEvent logEvent, string identifier)
    {
        ArgumentNullException.ThrowIfNull(logEvent);
        using var message = new StringWriter(CultureInfo.InvariantCulture);
        MessageFormat.Format(logEvent, message);
        if (logEvent.Exception is { } shown)
        {
            // journalctl shows MESSAGE only: say what failed there too; the stack is in EXCEPTION.
            message.Write($" ({shown.GetType().FullName}: {shown.Message})");
        }

        var entry = new JournalEntry()
            .Add("MESSAGE", message.ToString())
            .Add("PRIORITY", Priority(logEvent.Level).ToString(CultureInfo.InvariantCulture))
            .Add("SYSLOG_IDENTIFIER", identifier)
            .Add("MESSAGE_TEMPLATE", logEvent.MessageTemplate.Text);
        if (logEvent.Exception is { } exception)
        {
            entry.Add("EXCEPTION_TYPE", exception.GetType().FullName ?? exception.GetType().Name);
            entry.Add("EXCEPTION", exception.ToString());
        }

        foreach (var (property, value) in logEvent.Properties)
        {
            if (property == "EventId" && value is StructureValue eventId)
            {
                // Microsoft.Extensions.Logging's EventId arrives as { Id, Name }.
                foreach (var member in eventId.Properties)
                {
                    entry.Add(member.Name == "Id" ? "EVENT_ID" : "EVENT_NAME", Render(member.Value));
                }

                continue;
            }

            var name = JournalFieldName.From(property);
            entry.Add(Reserved.Contains(name) ? "PROPERTY_" + name : name, Render(value));
        }

        return entry;
    }

    public void Emit(LogEvent logEvent)
    {
        try
        {
            socket.Send(ToEntry(logEvent, identifier));
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // Logging must never take the agent down; a journald that is away loses this entry.
            SelfLog.WriteLine("journal sink: could not send to {0}: {1}", socket.Path, e.Message);
        }
    }

    public void Dispose() => socket.Dispose();

    private static string Render(LogEventPropertyValue value) => value switch
    {
        ScalarValue { Value: null } => string.Empty,
        ScalarValue { Value: string text } => text,
        ScalarValue { Value: IFormattable formattable } => formattable.ToString(null, CultureInfo.InvariantCulture),
        ScalarValue scalar => scalar.Value?.ToString() ?? string.Empty,
        _ => value.ToString(null, CultureInfo.InvariantCulture),
    };
}
