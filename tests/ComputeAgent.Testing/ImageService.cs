using System.Diagnostics;

namespace ComputeAgent.Testing;

/// <summary>One more image for <see cref="ImageService"/>: its properties, and a disk other than the test guest's plain one.</summary>
public sealed record ImageVariant(IReadOnlyDictionary<string, string> Properties, string? Disk = null);

/// <summary>A real HTTP image service: `compute-agent-cli demo image-server` over a folder holding the test guest.</summary>
public sealed class ImageService : IAsyncDisposable
{
    private readonly Process process;

    private ImageService(Process process, string url, IReadOnlyDictionary<string, string> ids, string directory)
    {
        this.process = process;
        Url = url;
        Ids = ids;
        ImageId = ids.TryGetValue("test-guest.qcow2", out var guest) ? guest : ids.Values.First();
        Directory = directory;
    }

    public string Url { get; }

    /// <summary>The test guest's image id (else the first image served).</summary>
    public string ImageId { get; }

    /// <summary>Every image served: file name to image id.</summary>
    public IReadOnlyDictionary<string, string> Ids { get; }

    public string Directory { get; }

    /// <summary>The id the image server gives the image file NAME.qcow2 without a sidecar id (a UUID from the name's MD5).</summary>
#pragma warning disable CA5351 // the server's own id scheme, not a security use
    public static string IdOf(string name) => new Guid(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.UTF8.GetBytes(name))).ToString();
#pragma warning restore CA5351

    /// <param name="variants">More images by name: a disk of the test guest (its plain disk when null) with image properties.</param>
    public static async Task<ImageService> StartAsync(TestGuest guest, string scratch, IReadOnlyDictionary<string, ImageVariant>? variants = null)
    {
        var directory = Path.Combine(scratch, "images");
        System.IO.Directory.CreateDirectory(directory);
        File.Copy(guest.Disk, Path.Combine(directory, "test-guest.qcow2"));
        foreach (var (name, variant) in variants ?? new Dictionary<string, ImageVariant>())
        {
            File.Copy(variant.Disk ?? guest.Disk, Path.Combine(directory, $"{name}.qcow2"));
            await File.WriteAllTextAsync(Path.Combine(directory, $"{name}.qcow2.json"), System.Text.Json.JsonSerializer.Serialize(new { properties = variant.Properties }));
        }

        return await StartAsync(directory);
    }

    /// <summary>Serves every image in <paramref name="directory"/> (see compute-agent-cli demo image-server: FILE.json sidecars set ids and properties).</summary>
    public static async Task<ImageService> StartAsync(string directory)
    {
        var port = TestController.FreePort();
        var startInfo = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { AgentProcess.Cli, "demo", "image-server", "--dir", directory, "--listen", $"127.0.0.1:{port}" })
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
}
