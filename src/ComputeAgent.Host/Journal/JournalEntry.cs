using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace ComputeAgent.Host.Journal;

/// <summary>
/// One entry in journald's native protocol (systemd's JOURNAL_NATIVE_PROTOCOL): a field without a
/// newline in its value is <c>NAME=value\n</c>; one with a newline is <c>NAME\n</c>, the value's
/// length as 64-bit little endian, the value, <c>\n</c>.
/// </summary>
public sealed class JournalEntry
{
    private readonly ArrayBufferWriter<byte> buffer = new(512);

    public int Length => buffer.WrittenCount;

    public ReadOnlySpan<byte> Bytes => buffer.WrittenSpan;

    /// <param name="name">A valid field name (see <see cref="JournalFieldName"/>).</param>
    public JournalEntry Add(string name, string value)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);
        Write(name);
        if (value.Contains('\n', StringComparison.Ordinal))
        {
            buffer.GetSpan(1)[0] = (byte)'\n';
            buffer.Advance(1);
            var length = Encoding.UTF8.GetByteCount(value);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.GetSpan(8), (ulong)length);
            buffer.Advance(8);
        }
        else
        {
            buffer.GetSpan(1)[0] = (byte)'=';
            buffer.Advance(1);
        }

        Write(value);
        buffer.GetSpan(1)[0] = (byte)'\n';
        buffer.Advance(1);
        return this;
    }

    private void Write(string text)
    {
        var written = Encoding.UTF8.GetBytes(text, buffer.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length)));
        buffer.Advance(written);
    }
}
