using System.Diagnostics;

namespace ComputeAgent.Testing;

/// <summary>A real HTTP image service: `compute-agent-cli image-server` over a folder holding the test guest.</summary>
public sealed class ImageService : IAsyncDisposable
{
    private readonly Process process;

    private ImageService(Process process, string url, string imageId, string directory)
    {
        this.process = process;
        Url = url;
        ImageId = imageId;
        Directory = directory;
    }

    public string Url { get; }

    /// <summary>The test guest's image id.</summary>
    public string ImageId { get; }

    public string Directory { get; }

    public static async Task<ImageService> StartAsync(TestGuest guest, string scratch)
    {
        var directory = Path.Combine(scratch, "images");
        System.IO.Directory.CreateDirectory(directory);
        File.Copy(guest.Disk, Path.Combine(directory, "test-guest.qcow2"));
        var port = TestController.FreePort();
        var startInfo = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { AgentProcess.Cli, "image-server", "--dir", directory, "--listen", $"127.0.0.1:{port}" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start the image server");
        var first = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) ?? throw new InvalidOperationException("the image server printed nothing");
        var serving = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (serving is null || !serving.StartsWith("serving", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the image server did not start: {first} {serving} {await process.StandardError.ReadToEndAsync()}");
        }

        return new ImageService(process, $"http://127.0.0.1:{port}", first.Split(' ')[0], directory);
    }

    public async ValueTask DisposeAsync()
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        process.Dispose();
    }
}
