using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Cli;

/// <summary>
/// A Glance v2 subset over a folder of images, for a host with no image service at hand (a lab,
/// the main job, the tests). The file's extension is its disk_format (qcow2, raw, iso; aki / ari
/// for a kernel / ramdisk). Each image id is a UUID derived from its name, printed at start,
/// unless a sidecar FILE.json says otherwise:
/// {"id": "...", "properties": {"kernel_id": "...", "hw_qemu_guest_agent": "yes"}}.
/// Reads: <c>GET /v2/images/{id}</c>, <c>/file</c>, and the list <c>GET /v2/images?property=value…</c>;
/// writes, as snapshots need them: <c>POST /v2/images</c>, <c>PUT /v2/images/{id}/file</c> (stored
/// in the folder as ID.qcow2) and <c>DELETE /v2/images/{id}</c>.
/// </summary>
internal static class ImageServer
{
    private static readonly string[] DiskFormats = ["qcow2", "raw", "iso", "aki", "ari"];

    // The list's own parameters, not property filters.
    private static readonly HashSet<string> ListParameters = ["sort_key", "sort_dir", "limit", "marker"];

    private static readonly JsonSerializerOptions SidecarJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static async Task<int> RunAsync(string directory, string listen, CancellationToken cancellationToken)
    {
        var images = new ConcurrentDictionary<string, Image>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(directory).Where(f => DiskFormats.Contains(Path.GetExtension(f).TrimStart('.'))).Order(StringComparer.Ordinal))
        {
            var image = await DescribeAsync(path, cancellationToken);
            images[image.Id] = image;
        }

        if (images.IsEmpty)
        {
            await Console.Error.WriteLineAsync($"no images ({string.Join(", ", DiskFormats.Select(f => "*." + f))}) in {directory}");
            return 1;
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://{listen}");
        var app = builder.Build();
        app.MapGet("/v2/images/{id}", (string id) => images.TryGetValue(id, out var image) ? Results.Text(image.ToJson(), "application/json") : Results.NotFound());
        app.MapGet("/v2/images/{id}/file", (string id) => !images.TryGetValue(id, out var image) ? Results.NotFound()
            : image.Path is null ? Results.NoContent()
            : Results.File(image.Path, "application/octet-stream"));
        app.MapGet("/v2/images", (HttpRequest request) =>
        {
            var filters = request.Query.Where(q => !ListParameters.Contains(q.Key)).ToDictionary(q => q.Key, q => q.Value.ToString(), StringComparer.Ordinal);
            var matching = images.Values
                .Where(i => filters.All(f => i.Fields.TryGetPropertyValue(f.Key, out var v) && v?.GetValueKind() == JsonValueKind.String && v.GetValue<string>() == f.Value))
                .OrderByDescending(i => i.CreatedAt);
            var list = new JsonArray([.. matching.Select(i => (JsonNode)i.Fields.DeepClone())]);
            return Results.Text(new JsonObject { ["images"] = list }.ToJsonString(), "application/json");
        });
        app.MapPost("/v2/images", async (HttpRequest request) =>
        {
            if (await JsonNode.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted) is not JsonObject fields)
            {
                return Results.BadRequest("expected a JSON object");
            }

            var id = Guid.NewGuid().ToString();
            var now = DateTimeOffset.UtcNow;
            fields["id"] = id;
            fields["status"] = "queued";
            fields["created_at"] = now.ToString("o", CultureInfo.InvariantCulture);
            var image = new Image(id, null, fields, now);
            images[id] = image;
            return Results.Text(image.ToJson(), "application/json", statusCode: StatusCodes.Status201Created);
        });
        app.MapPut("/v2/images/{id}/file", async (string id, HttpRequest request) =>
        {
            if (!images.TryGetValue(id, out var image))
            {
                return Results.NotFound();
            }

            if (image.Path is not null)
            {
                return Results.Conflict("the image already has data");
            }

            // As Glance: data goes only into a record whose formats are set.
            if (image.Fields["disk_format"] is null || image.Fields["container_format"] is null)
            {
                return Results.BadRequest("Properties disk_format, container_format must be set prior to saving data.");
            }

            var path = Path.Combine(directory, $"{id}.qcow2");
            await using (var file = File.Create(path))
            {
                await request.Body.CopyToAsync(file, request.HttpContext.RequestAborted);
            }

            images[id] = await DescribeAsync(path, request.HttpContext.RequestAborted, image);
            return Results.NoContent();
        });
        // Glance's JSON patch (application/openstack-images-v2.1-json-patch): add / replace of top-level members.
        app.MapPatch("/v2/images/{id}", async (string id, HttpRequest request) =>
        {
            if (!images.TryGetValue(id, out var image))
            {
                return Results.NotFound();
            }

            if (await JsonNode.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted) is not JsonArray operations)
            {
                return Results.BadRequest("expected a JSON patch (an array of operations)");
            }

            foreach (var operation in operations.OfType<JsonObject>())
            {
                var op = operation["op"]?.GetValue<string>();
                var member = operation["path"]?.GetValue<string>()?.TrimStart('/');
                if (op is not ("add" or "replace") || string.IsNullOrEmpty(member) || member.Contains('/', StringComparison.Ordinal))
                {
                    return Results.BadRequest($"unsupported patch operation {operation.ToJsonString()}");
                }

                image.Fields[member] = operation["value"]?.DeepClone();
            }

            return Results.Text(image.ToJson(), "application/json");
        });
        app.MapDelete("/v2/images/{id}", (string id) =>
        {
            if (!images.TryRemove(id, out var image))
            {
                return Results.NotFound();
            }

            if (image.Uploaded && image.Path is not null)
            {
                File.Delete(image.Path);
            }

            return Results.NoContent();
        });
        foreach (var image in images.Values.OrderBy(i => i.Path, StringComparer.Ordinal))
        {
            Console.WriteLine($"{image.Id}  {Path.GetFileName(image.Path)}  {image.Fields["size"]} bytes");
        }

        Console.WriteLine($"serving on http://{listen}");
        await app.StartAsync(cancellationToken);
        await app.WaitForShutdownAsync(cancellationToken);
        return 0;
    }

    /// <param name="Path">The data, or null while the image is queued.</param>
    private sealed record Image(string Id, string? Path, JsonObject Fields, DateTimeOffset CreatedAt)
    {
        /// <summary>Uploaded through the API (deleting the image deletes the file); the folder's own files never are.</summary>
        public bool Uploaded { get; init; }

        public string ToJson() => Fields.ToJsonString();
    }

    private sealed record Sidecar(string? Id, Dictionary<string, string>? Properties);

#pragma warning disable CA5351 // Glance's "checksum" is MD5 by definition; the agent checks the SHA-512 first
    /// <summary>An active image for the file at <paramref name="path"/>; <paramref name="queued"/> is the record it completes (an upload).</summary>
    private static async Task<Image> DescribeAsync(string path, CancellationToken cancellationToken, Image? queued = null)
    {
        var name = System.IO.Path.GetFileNameWithoutExtension(path);
        var format = System.IO.Path.GetExtension(path).TrimStart('.');
        var sidecar = queued is null && File.Exists(path + ".json")
            ? JsonSerializer.Deserialize<Sidecar>(await File.ReadAllTextAsync(path + ".json", cancellationToken), SidecarJson)
            : null;
        var id = queued?.Id ?? sidecar?.Id ?? new Guid(MD5.HashData(Encoding.UTF8.GetBytes(name))).ToString();
        string sha512, md5;
        await using (var stream = File.OpenRead(path))
        {
            sha512 = Convert.ToHexStringLower(await SHA512.HashDataAsync(stream, cancellationToken));
            stream.Position = 0;
            md5 = Convert.ToHexStringLower(await MD5.HashDataAsync(stream, cancellationToken));
        }

        // A symlinked image (the tests link cached builds): the size is the target's, not the link's.
        var size = new FileInfo(File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path).Length;
        var fields = queued?.Fields ?? new JsonObject
        {
            ["id"] = id,
            ["name"] = name,
            ["disk_format"] = format,
            ["container_format"] = format is "aki" or "ari" ? format : "bare",
            ["min_disk"] = 0,
            ["min_ram"] = 0,
            ["created_at"] = File.GetLastWriteTimeUtc(path).ToString("o", CultureInfo.InvariantCulture),
        };
        fields["status"] = "active";
        fields["size"] = size;
        fields["checksum"] = md5;
        fields["os_hash_algo"] = "sha512";
        fields["os_hash_value"] = sha512;

        // Glance's image properties are top-level members of the image.
        foreach (var (key, value) in sidecar?.Properties ?? [])
        {
            fields[key] = value;
        }

        return new Image(id, path, fields, queued?.CreatedAt ?? File.GetLastWriteTimeUtc(path)) { Uploaded = queued is not null };
    }
#pragma warning restore CA5351
}
