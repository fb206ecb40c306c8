using System.Runtime.InteropServices;

namespace ComputeAgent.Cli.Interop;

/// <summary>
/// The terminal calls `console` needs (termios), in process: running stty instead would not do,
/// because .NET puts its own terminal settings back each time a child process exits.
/// </summary>
internal static partial class Libc
{
    private const string LibraryName = "libc";
    private const int StandardInput = 0;
    private const int TcsaNow = 0;
    private const int TcsaDrain = 1;

    /// <summary>Room for struct termios (60 bytes on glibc x86_64/arm64); libc only ever sees it whole.</summary>
    private const int TermiosSize = 256;

    /// <summary>Standard input's terminal settings, to give back to <see cref="RestoreTerminal"/>; null when it is no terminal.</summary>
    public static byte[]? SaveTerminal()
    {
        var saved = new byte[TermiosSize];
        return tcgetattr(StandardInput, saved) == 0 ? saved : null;
    }

    /// <summary>cfmakeraw's settings on standard input: no echo, no line editing, no signals from keys.</summary>
    public static bool MakeTerminalRaw(byte[] saved)
    {
        var raw = (byte[])saved.Clone();
        cfmakeraw(raw);
        return tcsetattr(StandardInput, TcsaNow, raw) == 0;
    }

    public static void RestoreTerminal(byte[] saved) => _ = tcsetattr(StandardInput, TcsaDrain, saved);

    [LibraryImport(LibraryName, SetLastError = true)]
    private static partial int tcgetattr(int fd, [Out] byte[] termios);

    [LibraryImport(LibraryName, SetLastError = true)]
    private static partial int tcsetattr(int fd, int optionalActions, [In] byte[] termios);

    [LibraryImport(LibraryName)]
    private static partial void cfmakeraw([In, Out] byte[] termios);
}
