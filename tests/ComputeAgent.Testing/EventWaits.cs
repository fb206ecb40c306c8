using System.Threading.Channels;
using ComputeAgent.Libvirt;

namespace ComputeAgent.Testing;

public static class EventWaits
{
    /// <summary>
    /// Reads events until one matches, failing with the list of what did arrive when none does
    /// within <paramref name="timeout"/> (a bound for a hung test, not a speed assertion).
    /// </summary>
    public static async Task<DomainEvent> WaitForAsync(this ChannelReader<DomainEvent> reader, Func<DomainEvent, bool> match, TimeSpan timeout, string what)
    {
        var seen = new List<DomainEvent>();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var next = await reader.ReadAsync(cts.Token);
                if (match(next))
                {
                    return next;
                }

                seen.Add(next);
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no event {what} within {timeout}; saw: [{string.Join(", ", seen)}]");
        }
    }

    /// <summary>The next lifecycle event of the domain, whatever it is.</summary>
    public static Task<DomainEvent> NextLifecycleAsync(this ChannelReader<DomainEvent> reader, Guid uuid, TimeSpan timeout) =>
        reader.WaitForAsync(e => e.Kind == DomainEventKind.Lifecycle && e.Uuid == uuid, timeout, $"for {uuid}");

    /// <summary>Waits for a line of the serial console log; fails with the log's tail when it never comes.</summary>
    public static Task WaitForConsoleLineAsync(string logPath, string line, TimeSpan timeout, int occurrence = 1) =>
        WaitForConsoleAsync(logPath, l => l == line, $"'{line}'", timeout, occurrence);

    /// <summary>Waits for a console line that <paramref name="matches"/> (lines without their '\r'); fails with the log's tail when none comes.</summary>
    public static async Task WaitForConsoleAsync(string logPath, Func<string, bool> matches, string what, TimeSpan timeout, int occurrence = 1)
    {
        ArgumentNullException.ThrowIfNull(matches);
        using var cts = new CancellationTokenSource(timeout);
        var text = string.Empty;
        while (!cts.IsCancellationRequested)
        {
            if (File.Exists(logPath))
            {
                await using var stream = new FileStream(logPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                using var streamReader = new StreamReader(stream);
                text = await streamReader.ReadToEndAsync(CancellationToken.None);
                var count = text.Split('\n').Count(l => matches(l.TrimEnd('\r')));
                if (count >= occurrence)
                {
                    return;
                }
            }

            try
            {
                await Task.Delay(100, cts.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        throw new TimeoutException($"{what} (occurrence {occurrence}) not on the console within {timeout}; log tail: {text[Math.Max(0, text.Length - 1500)..]}");
    }
}
