extern alias host;
using System.Buffers.Binary;
using System.Text;
using ComputeAgent.Testing;
using host::ComputeAgent.Host.Journal;
using Serilog;
using Serilog.Core;
using Xunit;

namespace ComputeAgent.Host.Systemd.Tests;

/// <summary>The journal sink writing to a real Unix datagram socket; what arrives is parsed as journald would.</summary>
public sealed class JournalSinkTests : IDisposable
{
    private readonly string scratch = RepositoryPaths.CreateScratch("journal");
    private readonly JournalReceiver journal;
    private readonly Logger logger;

    public JournalSinkTests()
    {
        journal = new JournalReceiver(Path.Combine(scratch, "socket"));
        logger = new LoggerConfiguration()
            .MinimumLevel.Verbose()
            .WriteTo.Sink(new JournalSink(new JournalSocket(journal.Path), AgentLogging.Identifier))
            .CreateLogger();
    }

    [Fact]
    public void A_small_entry_is_one_datagram_with_the_rendered_message_and_every_property_as_its_own_field()
    {
        var uuid = Guid.NewGuid();
        logger.ForContext("RequestId", "req-42").Information("Instance {InstanceUuid}: {Command} accepted, task_state {TaskState}", uuid, "pause", "PAUSING");

        var entry = journal.Receive();
        Assert.Null(entry.MemfdContent);
        Assert.Equal($"Instance {uuid}: pause accepted, task_state PAUSING", entry["MESSAGE"]);
        Assert.Equal("6", entry["PRIORITY"]);
        Assert.Equal("compute-agent", entry["SYSLOG_IDENTIFIER"]);
        Assert.Equal(uuid.ToString(), entry["INSTANCE_UUID"]);
        Assert.Equal("pause", entry["COMMAND"]);
        Assert.Equal("PAUSING", entry["TASK_STATE"]);
        Assert.Equal("req-42", entry["REQUEST_ID"]);
        Assert.Equal("Instance {InstanceUuid}: {Command} accepted, task_state {TaskState}", entry["MESSAGE_TEMPLATE"]);
        Assert.False(entry.Has("EXCEPTION"));
    }

    [Fact]
    public void Each_level_arrives_as_its_syslog_priority()
    {
        logger.Verbose("verbose");
        logger.Debug("debug");
        logger.Information("information");
        logger.Warning("warning");
        logger.Error("error");
        logger.Fatal("fatal");

        var priorities = Enumerable.Range(0, 6).Select(_ => journal.Receive()).ToDictionary(e => e["MESSAGE"], e => e["PRIORITY"]);
        Assert.Equal(
            new Dictionary<string, string> { ["verbose"] = "7", ["debug"] = "7", ["information"] = "6", ["warning"] = "4", ["error"] = "3", ["fatal"] = "2" },
            priorities);
    }

    [Fact]
    public void A_value_with_newlines_uses_the_length_prefixed_form_and_arrives_whole()
    {
        const string text = "line one\nline two\n\nline four=with equals";
        logger.Warning("Console said {ConsoleTail}", text);

        var entry = journal.Receive();
        Assert.Equal(text, entry["CONSOLE_TAIL"]);
        Assert.Equal($"Console said {text}", entry["MESSAGE"]);

        // On the wire: NAME, newline, the value's length as 64-bit little endian, the value, newline.
        var marker = Encoding.UTF8.GetBytes("CONSOLE_TAIL\n");
        var at = entry.Payload.AsSpan().IndexOf(marker);
        Assert.True(at >= 0, "CONSOLE_TAIL is not in the binary form");
        var lengthField = entry.Payload.AsSpan(at + marker.Length, 8);
        Assert.Equal((ulong)Encoding.UTF8.GetByteCount(text), BinaryPrimitives.ReadUInt64LittleEndian(lengthField));
    }

    [Fact]
    public void An_exception_goes_whole_into_EXCEPTION_and_is_named_in_MESSAGE()
    {
        Exception thrown;
        try
        {
            throw new InvalidOperationException("the disk is full");
        }
        catch (InvalidOperationException e)
        {
            thrown = e;
        }

        logger.Error(thrown, "Instance {InstanceUuid}: spawn failed", Guid.Empty);

        var entry = journal.Receive();
        Assert.Equal("3", entry["PRIORITY"]);
        Assert.Equal($"Instance {Guid.Empty}: spawn failed (System.InvalidOperationException: the disk is full)", entry["MESSAGE"]);
        Assert.Equal("System.InvalidOperationException", entry["EXCEPTION_TYPE"]);
        Assert.StartsWith("System.InvalidOperationException: the disk is full\n   at ", entry["EXCEPTION"], StringComparison.Ordinal);
        Assert.Contains(nameof(An_exception_goes_whole_into_EXCEPTION_and_is_named_in_MESSAGE), entry["EXCEPTION"], StringComparison.Ordinal);
    }

    [Fact]
    public void An_entry_too_large_for_a_datagram_arrives_in_a_sealed_memfd()
    {
        // Larger than any Unix datagram the kernel takes by default (net.core.wmem_max is 208 KiB).
        var large = new string('x', 1024 * 1024);
        logger.Information("Big {Blob}", large);

        var entry = journal.Receive();
        Assert.Empty(entry.Payload);
        Assert.NotNull(entry.MemfdContent);
        // F_SEAL_SEAL 0x1 | F_SEAL_SHRINK 0x2 | F_SEAL_GROW 0x4 | F_SEAL_WRITE 0x8 (linux/fcntl.h): what journald requires.
        Assert.Equal(0xF, entry.MemfdSeals & 0xF);
        Assert.Equal(large, entry["BLOB"]);
        Assert.Equal("Big " + large, entry["MESSAGE"]);
        Assert.Equal("6", entry["PRIORITY"]);

        // The next small entry is a datagram again.
        logger.Information("small again");
        Assert.Null(journal.Receive().MemfdContent);
    }

    [Theory]
    [InlineData("InstanceUuid", "INSTANCE_UUID")]
    [InlineData("RequestId", "REQUEST_ID")]
    [InlineData("TaskState", "TASK_STATE")]
    [InlineData("VMState", "VM_STATE")]
    [InlineData("SourceContext", "SOURCE_CONTEXT")]
    [InlineData("instanceCount", "INSTANCE_COUNT")]
    [InlineData("Http2Frames", "HTTP2_FRAMES")]
    [InlineData("{OriginalFormat}", "ORIGINAL_FORMAT")]
    [InlineData("_Trusted", "TRUSTED")]
    [InlineData("3d", "F_3D")]
    [InlineData("a.b-c", "A_B_C")]
    public void Property_names_become_valid_upper_snake_case_journal_fields(string property, string field) =>
        Assert.Equal(field, JournalFieldName.From(property));

    [Fact]
    public void A_property_named_like_a_field_the_sink_writes_keeps_its_own_field()
    {
        logger.Information("about {Priority}", "high");

        var entry = journal.Receive();
        Assert.Equal("6", entry["PRIORITY"]);
        Assert.Equal("high", entry["PROPERTY_PRIORITY"]);
    }

    public void Dispose()
    {
        logger.Dispose();
        journal.Dispose();
        Directory.Delete(scratch, recursive: true);
    }
}
