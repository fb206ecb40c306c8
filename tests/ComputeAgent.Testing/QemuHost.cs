using ComputeAgent.Libvirt;
using Xunit;

namespace ComputeAgent.Testing;

/// <summary>
/// A real libvirtd driving QEMU (TCG) and the built test guest, started by the tests themselves
/// when not running. One per test collection (xunit class fixture / collection fixture).
/// When the machine truly cannot run QEMU guests, <see cref="SkipReason"/> says why, loudly.
/// </summary>
public sealed class QemuHost : IAsyncLifetime
{
    public const string Uri = "qemu:///system";

    public string? SkipReason { get; private set; }

    public TestGuest Guest { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        SkipReason = await LibvirtDaemon.EnsureRunningAsync();
        if (SkipReason is not null)
        {
            Console.Error.WriteLine($"*** QEMU TESTS SKIPPED: {SkipReason}");
            return;
        }

        Guest = await TestGuest.LoadOrBuildAsync();
    }

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>Call first in every QEMU test: skips it (reported as skipped, never as passed) when the host cannot run guests.</summary>
    public void SkipIfUnavailable() => Skip.If(SkipReason is not null, SkipReason);
}

/// <summary>Starting and restarting libvirtd without systemd, as CI and the build machines need.</summary>
public static class LibvirtDaemon
{
    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <summary>Null when qemu:///system answers (starting virtlogd + libvirtd if needed); else why it cannot.</summary>
    public static async Task<string?> EnsureRunningAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (CanConnect())
            {
                return null;
            }

            if (Environment.UserName != "root")
            {
                return "libvirtd is not running and the tests are not root, so they cannot start it (run ./test.sh as root, or start libvirtd)";
            }

            if (!File.Exists("/usr/sbin/libvirtd"))
            {
                return "libvirtd is not installed (apt-get install libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86)";
            }

            await StartAsync();
            return await WaitUntilConnectableAsync(TimeSpan.FromSeconds(30))
                ? null
                : "libvirtd was started but qemu:///system did not answer within 30 s";
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Stops libvirtd (guests keep running, as on a real host) and starts it again.</summary>
    public static async Task RestartAsync()
    {
        await Gate.WaitAsync();
        try
        {
            await ProcessRunner.RunAsync("pkill", ["-TERM", "-x", "libvirtd"], TimeSpan.FromSeconds(10));
            for (var i = 0; i < 100 && await IsProcessRunningAsync("libvirtd"); i++)
            {
                await Task.Delay(100);
            }

            await StartAsync();
            if (!await WaitUntilConnectableAsync(TimeSpan.FromSeconds(30)))
            {
                throw new InvalidOperationException("libvirtd did not come back within 30 s after a restart");
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    private static async Task StartAsync()
    {
        if (!await IsProcessRunningAsync("virtlogd"))
        {
            (await ProcessRunner.RunAsync("/usr/sbin/virtlogd", ["-d"], TimeSpan.FromSeconds(20))).EnsureSuccess("virtlogd -d");
        }

        (await ProcessRunner.RunAsync("/usr/sbin/libvirtd", ["-d"], TimeSpan.FromSeconds(30))).EnsureSuccess("libvirtd -d");
    }

    private static async Task<bool> IsProcessRunningAsync(string name) =>
        (await ProcessRunner.RunAsync("pgrep", ["-x", name], TimeSpan.FromSeconds(10))).ExitCode == 0;

    private static async Task<bool> WaitUntilConnectableAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (CanConnect())
            {
                return true;
            }

            await Task.Delay(200);
        }

        return false;
    }

    private static bool CanConnect()
    {
        try
        {
            using var connection = LibvirtConnection.Open(QemuHost.Uri);
            return connection.IsAlive;
        }
        catch (LibvirtException)
        {
            return false;
        }
    }
}
