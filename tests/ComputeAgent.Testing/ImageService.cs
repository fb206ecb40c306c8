using System.Diagnostics;

namespace ComputeAgent.Testing;

/// <summary>One more image for <see cref="ImageService"/>: its properties, and a disk other than the test guest's plain one.</summary>
public sealed record ImageVariant(IReadOnlyDictionary<string, string> Properties, string? Disk = null);

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

    /// <summary>The id the image server gives the image file NAME.qcow2 (a UUID from the name's MD5).</summary>
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
            await File.WriteAllTextAsync(Path.Combine(directory, $"{name}.properties.json"), System.Text.Json.JsonSerializer.Serialize(variant.Properties));
        }

        var port = TestController.FreePort();
        var startInfo = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { AgentProcess.Cli, "image-server", "--dir", directory, "--listen", $"127.0.0.1:{port}" })
        {
            startInfo.ArgumentList.Add(argument);
        }

        var process = Process.Start(startInfo) ?? throw new InvalidOperationException("could not start the image server");
        // One line per image, then "serving on …".
        var printed = new List<string>();
        while (await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) is { } line)
        {
            printed.Add(line);
            if (line.StartsWith("serving", StringComparison.Ordinal))
            {
                return new ImageService(process, $"http://127.0.0.1:{port}", IdOf("test-guest"), directory);
            }
        }

        throw new InvalidOperationException($"the image server did not start: {string.Join(" / ", printed)} {await process.StandardError.ReadToEndAsync()}");
    }

    public async ValueTask DisposeAsync()
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        process.Dispose();
    }
}
