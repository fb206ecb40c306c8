using System.Diagnostics;

namespace ComputeAgent.Testing;

/// <summary>Runs a helper program (qemu-img, the guest build script, libvirtd) and captures its output.</summary>
public static class ProcessRunner
{
    public sealed record Result(int ExitCode, string StandardOutput, string StandardError)
    {
        public Result EnsureSuccess(string what) => ExitCode == 0
            ? this
            : throw new InvalidOperationException($"{what} failed with exit code {ExitCode}: {StandardError.Trim()} {StandardOutput.Trim()}");
    }

    public static async Task<Result> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {fileName}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', startInfo.ArgumentList)} did not finish within {timeout}");
        }

        return new Result(process.ExitCode, await stdout, await stderr);
    }
}
