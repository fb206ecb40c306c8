using System.ComponentModel;
using System.Diagnostics;

namespace ComputeAgent.Instances.Images;

/// <summary>Runs one of the host programs the agent needs (qemu-img, xorriso, mkfs.vfat, mcopy): arguments as a list, never a shell.</summary>
internal static class HostTool
{
    /// <summary>Runs <paramref name="program"/> and returns its standard output; a non-zero exit is an <see cref="IOException"/> quoting its standard error.</summary>
    /// <param name="package">The Debian package to install when the program is missing (named in the error).</param>
    /// <param name="environment">Extra environment variables for the program.</param>
    /// <param name="label">How errors name the run (default: the program's name).</param>
    public static async Task<string> RunAsync(
        string program,
        IEnumerable<string> arguments,
        string package,
        CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string>? environment = null,
        string? label = null)
    {
        var (exitCode, output, error) = await RunToExitAsync(program, arguments, package, cancellationToken, environment).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw new IOException($"{label ?? Path.GetFileName(program)} failed (exit {exitCode}): {error.Trim()}");
        }

        return output;
    }

    /// <summary>Runs <paramref name="program"/> and returns its exit status with what it wrote, for programs whose exit status is an answer (qemu-img check).</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunToExitAsync(
        string program,
        IEnumerable<string> arguments,
        string package,
        CancellationToken cancellationToken,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var startInfo = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[key] = value;
        }

        var name = Path.GetFileName(program);
        Process process;
        try
        {
            process = Process.Start(startInfo) ?? throw new InvalidOperationException($"{name} could not be started: install {package}");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"{name} could not be started ({e.Message}): install {package}", e);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var error = process.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            return (process.ExitCode, await output.ConfigureAwait(false), await error.ConfigureAwait(false));
        }
    }
}
