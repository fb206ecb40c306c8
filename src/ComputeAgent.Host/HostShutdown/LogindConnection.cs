using Microsoft.Win32.SafeHandles;
using Tmds.DBus.Protocol;

namespace ComputeAgent.Host.HostShutdown;

/// <summary>
/// The two things the agent asks of systemd-logind on the system bus: a "delay" inhibitor lock on
/// shutdown (a file descriptor; the host's shutdown waits, up to logind's InhibitDelayMaxSec,
/// until it is closed) and the PrepareForShutdown signal.
/// </summary>
public sealed class LogindConnection : IDisposable
{
    public const string BusName = "org.freedesktop.login1";
    public const string ObjectPath = "/org/freedesktop/login1";
    public const string ManagerInterface = "org.freedesktop.login1.Manager";

    private readonly DBusConnection connection;

    private LogindConnection(DBusConnection connection) => this.connection = connection;

    /// <summary>The system bus the agent uses: the setting, else $DBUS_SYSTEM_BUS_ADDRESS, else the standard socket.</summary>
    public static string SystemBusAddress(string? configured) =>
        configured is { Length: > 0 } ? configured : DBusAddress.System ?? "unix:path=/run/dbus/system_bus_socket";

    /// <summary>Connects to the bus; throws <see cref="DBusConnectionException"/> (or a socket error) when there is none.</summary>
    public static async Task<LogindConnection> ConnectAsync(string address, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);

        // A missing socket file otherwise surfaces as "Cannot assign requested address".
        const string unixPath = "unix:path=";
        if (address.StartsWith(unixPath, StringComparison.Ordinal) && address[unixPath.Length..].Split(',')[0] is var socket && !File.Exists(socket))
        {
            throw new IOException($"no bus socket at {socket}");
        }

        var connection = new DBusConnection(address);
        try
        {
            await connection.ConnectAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
            return new LogindConnection(connection);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>org.freedesktop.login1.Manager.Inhibit(what, who, why, mode): the lock is held while the returned descriptor is open.</summary>
    public Task<SafeFileHandle> InhibitAsync(string what, string who, string why, string mode)
    {
        return connection.CallMethodAsync(CreateMessage(), static (Message message, object? _) => message.GetBodyReader().ReadHandle<SafeFileHandle>(), null);

        MessageBuffer CreateMessage()
        {
            using var writer = connection.GetMessageWriter();
            writer.WriteMethodCallHeader(destination: BusName, path: ObjectPath, @interface: ManagerInterface, signature: "ssss", member: "Inhibit");
            writer.WriteString(what);
            writer.WriteString(who);
            writer.WriteString(why);
            writer.WriteString(mode);
            return writer.CreateMessage();
        }
    }

    /// <summary>
    /// PrepareForShutdown(start): true when the host is about to shut down or reboot, false when
    /// a shutdown was cancelled. Only logind's own signals count (sender org.freedesktop.login1).
    /// <paramref name="closed"/> is called once if the bus connection fails or closes.
    /// </summary>
    public ValueTask<IDisposable> WatchPrepareForShutdownAsync(Action<bool> handler, Action<Exception> closed) =>
        connection.WatchSignalAsync(
            BusName,
            ObjectPath,
            ManagerInterface,
            "PrepareForShutdown",
            static (Message message, object? _) => message.GetBodyReader().ReadBool(),
            (Notification<bool> notification) =>
            {
                if (notification.HasValue)
                {
                    handler(notification.Value);
                }
                else if (notification.Type is NotificationType.ConnectionClosed or NotificationType.ConnectionFailed)
                {
                    closed(notification.CompletionReason);
                }
            },
            ObserverFlags.EmitOnConnectionClosed | ObserverFlags.EmitOnConnectionFailed,
            emitOnCapturedContext: false,
            state: null);

    public void Dispose() => connection.Dispose();
}
