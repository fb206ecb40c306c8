using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using System.Security.Cryptography;
using System.Text;

namespace ComputeAgent.Cli;

/// <summary>
/// A Glance v2 subset over a folder of images, for a host with no image service at hand (a lab,
/// the main job, the tests): GET /v2/images/{id} and GET /v2/images/{id}/file. The file's
/// extension is its disk_format (qcow2, raw, iso; aki / ari for a kernel / ramdisk). Each image id
/// is a UUID derived from its name, printed at start, unless a sidecar FILE.json says otherwise:
/// {"id": "...", "properties": {"kernel_id": "...", "os_command_line": "..."}}.
/// </summary>
internal static class ImageServer
{
    public static async Task<int> RunAsync(string directory, string listen, CancellationToken cancellationToken)
    {
        var images = Directory.EnumerateFiles(directory)
            .Where(f => DiskFormats.Contains(Path.GetExtension(f).TrimStart('.')))
            .Order(StringComparer.Ordinal)
            .Select(Describe)
            .ToDictionary(i => i.Id, StringComparer.Ordinal);
        if (images.Count == 0)
        {
            await Console.Error.WriteLineAsync($"no images ({string.Join(", ", DiskFormats.Select(f => "*." + f))}) in {directory}");
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

    private static readonly string[] DiskFormats = ["qcow2", "raw", "iso", "aki", "ari"];

    private static readonly System.Text.Json.JsonSerializerOptions SidecarJson = new() { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower };

    private sealed record Image(string Id, string Path, long Size, string Json);

    private sealed record Sidecar(string? Id, Dictionary<string, string>? Properties);

#pragma warning disable CA5351 // Glance's "checksum" is MD5 by definition; the agent checks the SHA-512 first
    private static Image Describe(string path)
    {
        var name = System.IO.Path.GetFileNameWithoutExtension(path);
        var format = System.IO.Path.GetExtension(path).TrimStart('.');
        var sidecar = File.Exists(path + ".json")
            ? System.Text.Json.JsonSerializer.Deserialize<Sidecar>(File.ReadAllText(path + ".json"), SidecarJson)
            : null;
        var id = sidecar?.Id ?? new Guid(MD5.HashData(Encoding.UTF8.GetBytes(name))).ToString();
        using var stream = File.OpenRead(path);
        var sha512 = Convert.ToHexStringLower(SHA512.HashData(stream));
        stream.Position = 0;
        var md5 = Convert.ToHexStringLower(MD5.HashData(stream));
        // A symlinked image (the tests link cached builds): the size is the target's, not the link's.
        var size = new FileInfo(File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path).Length;
        // Glance's image properties are top-level members of the image.
        var fields = (sidecar?.Properties ?? []).ToDictionary(p => p.Key, p => (object)p.Value, StringComparer.Ordinal);
        var json = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>(fields)
        {
            ["id"] = id,
            ["name"] = name,
            ["status"] = "active",
            ["disk_format"] = format,
            ["container_format"] = format is "aki" or "ari" ? format : "bare",
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
