using System.Runtime.InteropServices;
using System.Threading.Channels;
using ComputeAgent.Libvirt.Interop;
using static ComputeAgent.Libvirt.Interop.Libvirt;

namespace ComputeAgent.Libvirt;

/// <summary>
/// A domain's serial console (virDomainOpenConsole on a non-blocking virStream), as `virsh console`
/// opens it. What the guest writes arrives on <see cref="Output"/>, read on the libvirt event loop
/// thread as the stream becomes readable; <see cref="Output"/> completes when the console closes
/// (the guest stopped, another session forced it away, libvirt went away), with a
/// <see cref="LibvirtException"/> when libvirt reported an error. One writer at a time.
/// </summary>
public sealed class DomainConsole : IAsyncDisposable
{
    private const int ReadBufferSize = 64 * 1024;
    private const int WatchedEvents = StreamEventReadable | StreamEventError | StreamEventHangup;

    private readonly SafeStreamHandle stream;
    private readonly Channel<ReadOnlyMemory<byte>> output = Channel.CreateUnbounded<ReadOnlyMemory<byte>>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly byte[] readBuffer = new byte[ReadBufferSize];
    private readonly Lock gate = new();
    private TaskCompletionSource? writable;
    private int closed;

    private DomainConsole(SafeStreamHandle stream) => this.stream = stream;

    /// <summary>
    /// What the guest writes to its serial port, chunk by chunk as libvirt delivers it. Unbounded: the
    /// event loop thread must never wait for a slow reader, and a serial port writes at most ~11 KB/s.
    /// </summary>
    public ChannelReader<ReadOnlyMemory<byte>> Output => output.Reader;

    /// <summary>
    /// Opens the domain's first serial console. With <paramref name="force"/> libvirt ends any other
    /// holder's console stream (another agent session, a `virsh console`); without it, a console held
    /// elsewhere fails with <see cref="LibvirtErrorCode.OperationFailed"/>. Blocks for a libvirt round trip.
    /// </summary>
    public static unsafe DomainConsole Open(LibvirtConnection connection, LibvirtDomain domain, bool force)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(domain);
        var stream = virStreamNew(connection.Handle, StreamNonBlock);
        if (stream.IsInvalid)
        {
            var error = LibvirtException.FromLastError("virStreamNew");
            stream.Dispose();
            throw error;
        }

        var started = AgentMeter.StartLibvirtCall();
        var opened = virDomainOpenConsole(domain.Handle, null, stream, DomainConsoleSafe | (force ? DomainConsoleForce : 0));
        AgentMeter.EndLibvirtCall(started, "virDomainOpenConsole");
        if (opened < 0)
        {
            var error = LibvirtException.FromLastError("virDomainOpenConsole");
            stream.Dispose();
            throw error;
        }

        var console = new DomainConsole(stream);

        // The GCHandle is libvirt's from here: it frees it (FreeGCHandle) when the callback is removed.
        var self = GCHandle.Alloc(console);
        if (virStreamEventAddCallback(stream, WatchedEvents, &OnStreamEvent, GCHandle.ToIntPtr(self), &LibvirtConnection.FreeGCHandle) < 0)
        {
            var error = LibvirtException.FromLastError("virStreamEventAddCallback");
            self.Free();
            _ = virStreamAbort(stream);
            virResetLastError();
            stream.Dispose();
            throw error;
        }

        return console;
    }

    /// <summary>
    /// Sends bytes to the guest's serial port. A stream that cannot take them now is waited on
    /// through the event loop (WRITABLE), never by spinning. Not for concurrent callers.
    /// </summary>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref closed) != 0, this);
            var sent = Send(data.Span);
            if (sent > 0)
            {
                data = data[sent..];
                continue;
            }

            if (sent != StreamWouldBlock)
            {
                throw LibvirtException.FromLastError("virStreamSend");
            }

            var wait = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (gate)
            {
                writable = wait;
            }

            if (output.Reader.Completion.IsCompleted)
            {
                throw Ended();
            }

            if (virStreamEventUpdateCallback(stream, WatchedEvents | StreamEventWritable) < 0)
            {
                throw LibvirtException.FromLastError("virStreamEventUpdateCallback");
            }

            await wait.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Closes the console (virStreamAbort: the guest's pending output is dropped) and frees the stream.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref closed, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }

        // Abort and remove are libvirt round trips: off the caller's thread, as every libvirt call.
        return new ValueTask(Task.Run(() =>
        {
            if (virStreamEventRemoveCallback(stream) < 0)
            {
                virResetLastError();
            }

            // A stream the guest's side already ended has nothing to abort: that failure says nothing.
            if (virStreamAbort(stream) < 0)
            {
                virResetLastError();
            }

            stream.Dispose();
            output.Writer.TryComplete();
            TakeWritable()?.TrySetException(new ObjectDisposedException(nameof(DomainConsole)));
        }));
    }

    private static LibvirtException Ended() =>
        new("virStreamSend", LibvirtErrorCode.InvalidStream, LibvirtErrorDomain.Streams, "the console stream has ended");

    private unsafe int Send(ReadOnlySpan<byte> data)
    {
        fixed (byte* bytes = data)
        {
            return virStreamSend(stream, bytes, (nuint)data.Length);
        }
    }

    private TaskCompletionSource? TakeWritable()
    {
        lock (gate)
        {
            var waiting = writable;
            writable = null;
            return waiting;
        }
    }

    /// <summary>On the event loop thread: reads what is there without blocking, wakes a waiting writer.</summary>
    private unsafe void OnEvent(int events)
    {
        if ((events & StreamEventWritable) != 0)
        {
            _ = virStreamEventUpdateCallback(stream, WatchedEvents);
            TakeWritable()?.TrySetResult();
        }

        if ((events & WatchedEvents) == 0)
        {
            return;
        }

        while (true)
        {
            int received;
            fixed (byte* buffer = readBuffer)
            {
                received = virStreamRecv(stream, buffer, (nuint)readBuffer.Length);
            }

            if (received > 0)
            {
                output.Writer.TryWrite(readBuffer.AsSpan(0, received).ToArray());
                continue;
            }

            if (received == StreamWouldBlock)
            {
                return;
            }

            // 0 is the end of the stream; -1 an error (a hangup reads as one of the two).
            Exception? error = received < 0 ? LibvirtException.FromLastError("virStreamRecv") : null;
            _ = virStreamEventUpdateCallback(stream, 0);
            virResetLastError();
            output.Writer.TryComplete(error);
            TakeWritable()?.TrySetException(error ?? Ended());
            return;
        }
    }

    [UnmanagedCallersOnly]
    private static void OnStreamEvent(nint stream, int events, nint opaque)
    {
        if (GCHandle.FromIntPtr(opaque).Target is not DomainConsole console)
        {
            return;
        }

        try
        {
            console.OnEvent(events);
        }
#pragma warning disable CA1031 // an exception must never unwind into libvirt's event loop
        catch (Exception ex)
#pragma warning restore CA1031
        {
            // The stream was freed under the callback (ObjectDisposedException) or a read failed.
            console.output.Writer.TryComplete(ex);
        }
    }
}
