using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ComputeAgent.Libvirt;

/// <summary>
/// libvirt's default event loop, once per process, on one dedicated thread running
/// virEventRunDefaultImpl. Keepalives, close callbacks and domain events are all delivered
/// on this thread, so nothing that runs on it may block: callbacks only write to channels.
/// </summary>
public static class LibvirtEventLoop
{
    private static readonly Lock Gate = new();
    private static Thread? loopThread;
    private static volatile int iterations;

    /// <summary>True once the loop thread is running.</summary>
    public static bool IsRunning => loopThread is { IsAlive: true };

    public static TimeSpan HeartbeatInterval { get; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// How many loop iterations have run; the host's watchdog uses it as a liveness signal. A
    /// heartbeat timer makes it advance at least once every <see cref="HeartbeatInterval"/>.
    /// </summary>
    public static int Iterations => iterations;

    /// <summary>
    /// Registers the default implementation and starts the thread. Must happen before the first
    /// connection is opened, or that connection has no keepalive and no events; every connection
    /// opened through <see cref="LibvirtConnection"/> calls this first.
    /// </summary>
    public static unsafe void EnsureStarted()
    {
        if (loopThread is not null)
        {
            return;
        }

        lock (Gate)
        {
            if (loopThread is not null)
            {
                return;
            }

            Interop.Libvirt.EnsureResolver();
            Interop.Libvirt.virSetErrorFunc(0, &Interop.Libvirt.SilentErrorHandler);
            if (Interop.Libvirt.virEventRegisterDefaultImpl() < 0)
            {
                throw LibvirtException.FromLastError("virEventRegisterDefaultImpl");
            }

            // A heartbeat: the loop wakes twice a second even when no connection has anything to say,
            // so a loop that stops iterating is a stuck loop (the host's watchdog stops pinging).
            // It also keeps virEventRunDefaultImpl from spinning when nothing else is registered.
            _ = Interop.Libvirt.virEventAddTimeout((int)HeartbeatInterval.TotalMilliseconds, &NoopTimer, 0, null);

            var thread = new Thread(Run)
            {
                IsBackground = true,
                Name = "libvirt-event-loop",
            };
            thread.Start();
            loopThread = thread;
        }
    }

    /// <summary>
    /// Fault injection for the host's watchdog test: runs a callback on the loop thread that never
    /// returns, as a callback that blocks would. Nothing but that test calls it.
    /// </summary>
    public static unsafe void InjectStall()
    {
        EnsureStarted();
        _ = Interop.Libvirt.virEventAddTimeout(0, &StallTimer, 0, null);
    }

    private static void Run()
    {
        while (true)
        {
            if (Interop.Libvirt.virEventRunDefaultImpl() < 0)
            {
                // A failed iteration has already been reported through the error handler; reset
                // the thread-local error and keep serving: stopping here would silence every event.
                Interop.Libvirt.virResetLastError();
                Thread.Sleep(10);
            }

            Interlocked.Increment(ref iterations);
        }
    }

    [UnmanagedCallersOnly]
    private static void NoopTimer(int timer, nint opaque)
    {
    }

    [UnmanagedCallersOnly]
    private static void StallTimer(int timer, nint opaque) => Thread.Sleep(Timeout.Infinite);
}
