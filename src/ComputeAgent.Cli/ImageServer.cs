using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using System.Security.Cryptography;
using System.Text;

namespace ComputeAgent.Cli;

/// <summary>
/// A Glance v2 subset over a folder of disk images, for a host with no image service at hand (a
/// lab, the main job, the tests): GET /v2/images/{id} and GET /v2/images/{id}/file. Each file's
/// image id is a UUID derived from its name, printed at start.
/// </summary>
internal static class ImageServer
{
    public static async Task<int> RunAsync(string directory, string listen, CancellationToken cancellationToken)
    {
        var images = Directory.EnumerateFiles(directory, "*.qcow2").Select(Describe).ToDictionary(i => i.Id, StringComparer.Ordinal);
        if (images.Count == 0)
        {
            await Console.Error.WriteLineAsync($"no *.qcow2 images in {directory}");
            return 1;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{listen}");
        var app = builder.Build();
        app.MapGet("/v2/images/{id}", (string id) => images.TryGetValue(id, out var image) ? Results.Text(image.Json, "application/json") : Results.NotFound());
        app.MapGet("/v2/images/{id}/file", (string id) => images.TryGetValue(id, out var image) ? Results.File(image.Path, "application/octet-stream") : Results.NotFound());
        foreach (var image in images.Values)
        {
            Console.WriteLine($"{image.Id}  {Path.GetFileName(image.Path)}  {image.Size} bytes");
        }

        Console.WriteLine($"serving on http://{listen}");
        await app.StartAsync(cancellationToken);
        await app.WaitForShutdownAsync(cancellationToken);
        return 0;
    }

    private sealed record Image(string Id, string Path, long Size, string Json);

#pragma warning disable CA5351 // Glance's "checksum" is MD5 by definition; the agent checks the SHA-512 first
    private static Image Describe(string path)
    {
        var name = System.IO.Path.GetFileNameWithoutExtension(path);
        var id = new Guid(MD5.HashData(Encoding.UTF8.GetBytes(name))).ToString();
        using var stream = File.OpenRead(path);
        var sha512 = Convert.ToHexStringLower(SHA512.HashData(stream));
        stream.Position = 0;
        var md5 = Convert.ToHexStringLower(MD5.HashData(stream));
        var size = new FileInfo(path).Length;
        var json = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["id"] = id,
            ["name"] = name,
            ["status"] = "active",
            ["disk_format"] = "qcow2",
            ["container_format"] = "bare",
            ["size"] = size,
            ["checksum"] = md5,
            ["os_hash_algo"] = "sha512",
            ["os_hash_value"] = sha512,
            ["min_disk"] = 0,
            ["min_ram"] = 0,
        });
        return new Image(id, path, size, json);
    }
#pragma warning restore CA5351
}
