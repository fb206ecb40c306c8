using System.Globalization;
using System.Threading.Channels;

namespace ComputeAgent.Host.Controller;

/// <summary>
/// The last event-log sequence number the controller acknowledged, kept in
/// StateDirectory/controller-ack so that an agent restart resends only what was not acknowledged.
/// Acks arrive thousands a second; the file is rewritten (temporary file, fsync, rename) at most
/// every 20 ms, each time with the newest value, and once more on stop. A value lost in a crash only means a
/// resend, which the controller drops by sequence number.
/// </summary>
public sealed partial class AcknowledgedSequence : IAsyncDisposable
{
    public const string FileName = "controller-ack";
    private static readonly TimeSpan WriteInterval = TimeSpan.FromMilliseconds(20);
    private readonly string path;
    private readonly ILogger logger;
    private readonly Channel<bool> dirty = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Task writer;
    private long value;

    private AcknowledgedSequence(string path, long value, ILogger logger)
    {
        this.path = path;
        this.value = value;
        this.logger = logger;
        writer = Task.Run(WriteLoopAsync);
    }

    public long Value => Volatile.Read(ref value);

    /// <param name="lastSequence">The newest sequence number in the event log: an ack above it belongs to an older database.</param>
    public static async Task<AcknowledgedSequence> LoadAsync(string stateDirectory, long lastSequence, ILogger logger, CancellationToken cancellationToken)
    {
        var path = Path.Combine(stateDirectory, FileName);
        long value = 0;
        if (File.Exists(path))
        {
            var text = (await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false)).Trim();
            if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value))
            {
                // Resending everything is safe (the controller de-duplicates); losing changes is not.
                LogUnreadable(logger, path, text);
                value = 0;
            }
        }

        if (value > lastSequence)
        {
            // agent.db was replaced and its sequence numbers started again: all of the new log is unsent.
            LogAheadOfLog(logger, path, value, lastSequence);
            value = 0;
        }

        return new AcknowledgedSequence(path, value, logger);
    }

    /// <summary>Moves the value forward (never back) and schedules the file's rewrite.</summary>
    public void Advance(long sequence)
    {
        var current = Volatile.Read(ref value);
        while (sequence > current)
        {
            var seen = Interlocked.CompareExchange(ref value, sequence, current);
            if (seen == current)
            {
                dirty.Writer.TryWrite(true);
                return;
            }

            current = seen;
        }
    }

    public async ValueTask DisposeAsync()
    {
        dirty.Writer.TryComplete();
        await writer.ConfigureAwait(false);
    }

    private async Task WriteLoopAsync()
    {
        long written = -1;
        while (await dirty.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            dirty.Reader.TryRead(out _);
            written = await WriteAsync(written).ConfigureAwait(false);

            // At most one fsync per interval, however fast acks come; a crash costs a resend of less than that.
            await Task.Delay(WriteInterval).ConfigureAwait(false);
        }

        await WriteAsync(written).ConfigureAwait(false);
    }

    private async Task<long> WriteAsync(long written)
    {
        var now = Value;
        if (now == written)
        {
            return written;
        }

        var temporary = path + ".tmp";
        try
        {
            await using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 64, FileOptions.Asynchronous))
            {
                await file.WriteAsync(System.Text.Encoding.ASCII.GetBytes(now.ToString(CultureInfo.InvariantCulture) + "\n")).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
            return now;
        }
        catch (IOException ex)
        {
            LogWriteFailed(logger, path, now, ex.Message);
            return written;
        }
        catch (UnauthorizedAccessException ex)
        {
            LogWriteFailed(logger, path, now, ex.Message);
            return written;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path} holds '{Text}', not a sequence number; every change in the event log will be resent to the controller")]
    private static partial void LogUnreadable(ILogger logger, string path, string text);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Path} says the controller acknowledged up to {Sequence}, but the event log ends at {LastSequence} (a new agent.db); sending the whole log again")]
    private static partial void LogAheadOfLog(ILogger logger, string path, long sequence, long lastSequence);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not record the controller's ack {Sequence} in {Path}: {Reason}; after a restart changes from the previous record on are resent")]
    private static partial void LogWriteFailed(ILogger logger, string path, long sequence, string reason);
}
