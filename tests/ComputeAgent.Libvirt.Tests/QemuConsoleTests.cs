using System.Text;
using System.Threading.Channels;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Libvirt.Tests;

/// <summary>
/// DomainConsole on a real guest whose serial port is a pty (logged, as the agent defines it): the
/// test guest's shell answers what is typed; libvirt lets one stream hold the console, force takes
/// it, and the guest going away ends the stream.
/// </summary>
[Collection(QemuCollection.Name)]
[Trait("Category", "Qemu")]
public sealed class QemuConsoleTests(QemuHost host)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task The_console_stream_types_into_the_guests_shell_one_holder_at_a_time_until_the_guest_goes()
    {
        host.SkipIfUnavailable();
        using var connection = LibvirtConnection.Open(QemuHost.Uri);

        // The example domain writes its serial port to a file, which has no console to open: a pty
        // with the same file as its log instead.
        await using var guest = await BootedGuest.DefineAsync(host, connection, "console", instance =>
        {
            var log = System.Security.SecurityElement.Escape(instance.ConsoleLogPath);
            var xml = instance.Xml
                .Replace($"<serial type='file'>\n      <source path='{log}'/>", $"<serial type='pty'>\n      <log file='{log}' append='off'/>", StringComparison.Ordinal)
                .Replace($"<console type='file'>\n      <source path='{log}'/>", "<console type='pty'>", StringComparison.Ordinal);
            Assert.Contains("<serial type='pty'>", xml, StringComparison.Ordinal);
            return xml;
        });
        var domain = guest.Domain;
        domain.Create();
        await EventWaits.WaitForConsoleLineAsync(guest.Instance.ConsoleLogPath, host.Guest.ReadyLine, Bound);

        await using var first = DomainConsole.Open(connection, domain, force: false);
        await first.WriteAsync("echo console-$((6*7))\n"u8.ToArray(), CancellationToken.None);
        await ReadUntilAsync(first.Output, "console-42");

        var held = Assert.Throws<LibvirtException>(() => DomainConsole.Open(connection, domain, force: false));
        Assert.Equal(LibvirtErrorCode.OperationFailed, held.Code);

        await using var second = DomainConsole.Open(connection, domain, force: true);
        await EndAsync(first.Output);
        await second.WriteAsync("echo console-$((6*7+1))\n"u8.ToArray(), CancellationToken.None);
        await ReadUntilAsync(second.Output, "console-43");

        domain.Destroy();
        await EndAsync(second.Output);
    }

    private static async Task ReadUntilAsync(ChannelReader<ReadOnlyMemory<byte>> output, string text)
    {
        using var bound = new CancellationTokenSource(Bound);
        var seen = new StringBuilder();
        while (!seen.ToString().Contains(text, StringComparison.Ordinal))
        {
            Assert.True(await output.WaitToReadAsync(bound.Token), $"the console ended before '{text}' came; it said: {seen}");
            while (output.TryRead(out var chunk))
            {
                seen.Append(Encoding.UTF8.GetString(chunk.Span));
            }
        }
    }

    /// <summary>The stream ends: its output completes, at EOF or with libvirt's error.</summary>
    private static async Task EndAsync(ChannelReader<ReadOnlyMemory<byte>> output)
    {
        using var bound = new CancellationTokenSource(Bound);
        try
        {
            await foreach (var chunk in output.ReadAllAsync(bound.Token))
            {
            }
        }
        catch (LibvirtException)
        {
            // Aborted under us (force, the guest gone): an end too.
        }

        Assert.True(output.Completion.IsCompleted);
    }
}
