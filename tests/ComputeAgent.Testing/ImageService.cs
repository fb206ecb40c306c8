using System.Diagnostics;

namespace ComputeAgent.Testing;

/// <summary>A real HTTP image service: `compute-agent-cli image-server` over a folder holding the test guest.</summary>
public sealed class ImageService : IAsyncDisposable
{
    private readonly Process process;

    private ImageService(Process process, string url, IReadOnlyDictionary<string, string> ids, string directory)
    {
        this.process = process;
        Url = url;
        Ids = ids;
        ImageId = ids.Values.First();
        Directory = directory;
    }

    public string Url { get; }

    /// <summary>The test guest's image id (the first image served).</summary>
    public string ImageId { get; }

    /// <summary>Every image served: file name to image id.</summary>
    public IReadOnlyDictionary<string, string> Ids { get; }

    public string Directory { get; }

    public static async Task<ImageService> StartAsync(TestGuest guest, string scratch)
    {
        var directory = Path.Combine(scratch, "images");
        System.IO.Directory.CreateDirectory(directory);
        File.Copy(guest.Disk, Path.Combine(directory, "test-guest.qcow2"));
        return await StartAsync(directory);
    }

    /// <summary>Serves every image in <paramref name="directory"/> (see compute-agent-cli image-server: FILE.json sidecars set ids and properties).</summary>
    public static async Task<ImageService> StartAsync(string directory)
    {
        var port = FreePort();
        var startInfo = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { AgentProcess.Cli, "image-server", "--dir", directory, "--listen", $"127.0.0.1:{port}" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start the image server");
        // One "ID  FILE  SIZE bytes" line per image (hashing takes a while for big images), then "serving on ...".
        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        string? line;
        while ((line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(5))) is not null && !line.StartsWith("serving", StringComparison.Ordinal))
        {
            var parts = line.Split("  ");
            ids[parts[1]] = parts[0];
        }

        if (line is null || ids.Count == 0)
        {
            throw new InvalidOperationException($"the image server did not start: {string.Join(", ", ids.Keys)} {await process.StandardError.ReadToEndAsync()}");
        }

        return new ImageService(process, $"http://127.0.0.1:{port}", ids, directory);
    }

    public async ValueTask DisposeAsync()
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
