using System.IO.Pipes;
using Tmds.DBus.Protocol;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>One inhibitor lock handed out: what was asked, and when its descriptor was closed everywhere.</summary>
public sealed class InhibitorLock(string what, string who, string why, string mode, AnonymousPipeServerStream readEnd)
{
    public string What { get; } = what;

    public string Who { get; } = who;

    public string Why { get; } = why;

    public string Mode { get; } = mode;

    /// <summary>Completes when every copy of the lock's descriptor is closed (the read end of its pipe sees EOF), as logind notices.</summary>
    public Task Released { get; } = Task.Run(async () =>
    {
        var buffer = new byte[1];
        while (await readEnd.ReadAsync(buffer) > 0)
        {
        }

        await readEnd.DisposeAsync();
    });
}

/// <summary>
/// A small org.freedesktop.login1 on a test bus: Manager.Inhibit hands out the write end of a pipe
/// (logind hands out a FIFO's), and the test emits Manager.PrepareForShutdown as logind would.
/// </summary>
public sealed class LogindStandIn : IPathMethodHandler, IDisposable
{
    private readonly DBusConnection connection;
    private readonly List<InhibitorLock> locks = [];
    private readonly SemaphoreSlim lockTaken = new(0);

    private LogindStandIn(DBusConnection connection) => this.connection = connection;

    public string Path => "/org/freedesktop/login1";

    public bool HandlesChildPaths => false;

    public IReadOnlyList<InhibitorLock> Locks
    {
        get
        {
            lock (locks)
            {
                return [.. locks];
            }
        }
    }

    public static async Task<LogindStandIn> StartAsync(string busAddress)
    {
        var connection = new DBusConnection(busAddress);
        await connection.ConnectAsync();
        var standIn = new LogindStandIn(connection);
        connection.AddMethodHandler(standIn);
        await connection.RequestNameAsync("org.freedesktop.login1", RequestNameOptions.Default);
        return standIn;
    }

    /// <summary>The next lock the agent takes (bounded, for a hung test).</summary>
    public async Task<InhibitorLock> NextLockAsync(int index, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Locks.Count <= index)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !await lockTaken.WaitAsync(left))
            {
                throw new TimeoutException($"the agent took no inhibitor lock #{index + 1} within {timeout}");
            }
        }

        return Locks[index];
    }

    public void EmitPrepareForShutdown(bool start)
    {
        using var writer = connection.GetMessageWriter();
        writer.WriteSignalHeader(destination: null, path: Path, @interface: "org.freedesktop.login1.Manager", member: "PrepareForShutdown", signature: "b");
        writer.WriteBool(start);
        if (!connection.TrySendMessage(writer.CreateMessage()))
        {
            throw new InvalidOperationException("could not send PrepareForShutdown: the bus connection is closed");
        }
    }

    public ValueTask HandleMethodAsync(MethodContext context)
    {
        var request = context.Request;
        if (request.InterfaceAsString != "org.freedesktop.login1.Manager" || request.MemberAsString != "Inhibit" || request.SignatureAsString != "ssss")
        {
            context.ReplyUnknownMethodError();
            return ValueTask.CompletedTask;
        }

        var reader = request.GetBodyReader();
        var (what, who, why, mode) = (reader.ReadString(), reader.ReadString(), reader.ReadString(), reader.ReadString());
        var pipe = new AnonymousPipeServerStream(PipeDirection.In, HandleInheritability.None);
        using (var reply = context.CreateReplyWriter("h"))
        {
            // The message owns the write end from here and closes our copy once it is sent.
            reply.WriteHandle(pipe.ClientSafePipeHandle);
            context.Reply(reply.CreateMessage());
        }

        lock (locks)
        {
            locks.Add(new InhibitorLock(what, who, why, mode, pipe));
        }

        lockTaken.Release();
        return ValueTask.CompletedTask;
    }

    public void Dispose() => connection.Dispose();
}
