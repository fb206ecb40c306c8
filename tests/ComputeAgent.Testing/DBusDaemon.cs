using System.Diagnostics;
using System.Security;

namespace ComputeAgent.Testing;

/// <summary>
/// A real dbus-daemon of the test's own (Debian's package dbus) on a socket in a scratch folder,
/// standing in for the system bus: any local user may own names, call methods and send signals.
/// </summary>
public sealed class DBusDaemon : IAsyncDisposable
{
    private readonly Process process;

    private DBusDaemon(Process process, string address)
    {
        this.process = process;
        Address = address;
    }

    /// <summary>The bus address, e.g. unix:path=/var/tmp/.../bus.</summary>
    public string Address { get; }

    public static bool Installed => File.Exists("/usr/bin/dbus-daemon");

    public static async Task<DBusDaemon> StartAsync(string scratch)
    {
        if (!Installed)
        {
            throw new InvalidOperationException("dbus-daemon is not installed (Debian package dbus): run tests/host/ensure-host.sh as root");
        }

        var config = Path.Combine(scratch, "bus.conf");
        var socket = Path.Combine(scratch, "bus");
        await File.WriteAllTextAsync(config, $"""
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>custom</type>
              <listen>unix:path={SecurityElement.Escape(socket)}</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow user="*"/>
                <allow own="*"/>
                <allow send_type="method_call"/>
                <allow send_type="signal"/>
                <allow send_type="method_return"/>
                <allow send_type="error"/>
                <allow receive_type="method_call"/>
                <allow receive_type="signal"/>
                <allow receive_type="method_return"/>
                <allow receive_type="error"/>
              </policy>
            </busconfig>
            """);
        var startInfo = new ProcessStartInfo("/usr/bin/dbus-daemon") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { $"--config-file={config}", "--nofork", "--nopidfile", "--print-address" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start dbus-daemon");
        var address = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (string.IsNullOrEmpty(address))
        {
            var error = await process.StandardError.ReadToEndAsync();
            process.Kill();
            throw new InvalidOperationException($"dbus-daemon did not start: {error}");
        }

        return new DBusDaemon(process, address.Trim());
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }

        process.Dispose();
    }
}
