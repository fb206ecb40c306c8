using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Instances.Tests.Images;

/// <summary>One image the fake Glance serves, and how it misbehaves.</summary>
internal sealed class FakeImage
{
    public required string Id { get; init; }

    public required byte[] Data { get; init; }

    public string DiskFormat { get; init; } = "qcow2";

    public string ContainerFormat { get; init; } = "bare";

    public string Status { get; init; } = "active";

    public string? Name { get; init; } = "test image";

    /// <summary>Custom properties, flattened into the top level as Glance v2 does.</summary>
    public Dictionary<string, string> Properties { get; init; } = [];

    /// <summary>os_hash_algo; null leaves only the md5 checksum.</summary>
    public string? HashAlgorithm { get; init; } = "sha512";

    /// <summary>Serve the data with one byte flipped (same length): what the checksum must catch.</summary>
    public bool CorruptInTransit { get; init; }

    /// <summary>Answer the metadata request with this status instead.</summary>
    public HttpStatusCode? MetadataStatus { get; init; }

    /// <summary>Answer this many file requests with 503 before serving.</summary>
    public int FailFirstFiles { get; init; }

    /// <summary>Never answer the metadata request.</summary>
    public bool StallMetadata { get; init; }

    /// <summary>Send this many bytes of the file, then nothing more.</summary>
    public int? StallAfterBytes { get; init; }

    /// <summary>File requests wait for this before sending anything.</summary>
    public TaskCompletionSource? Gate { get; init; }

    /// <summary>virtual_size as Glance shows it; null: Glance has not worked it out.</summary>
    public long? VirtualSize { get; init; }

    public long Size => Data.Length;

#pragma warning disable CA5351 // Glance's legacy checksum is MD5.
    public string Md5 => Convert.ToHexStringLower(MD5.HashData(Data));
#pragma warning restore CA5351

    public string? HashValue => HashAlgorithm switch
    {
        null => null,
        "sha512" => Convert.ToHexStringLower(SHA512.HashData(Data)),
        "sha256" => Convert.ToHexStringLower(SHA256.HashData(Data)),
        _ => throw new NotSupportedException(HashAlgorithm),
    };
}

/// <summary>
/// A real HTTP server (Kestrel on 127.0.0.1, a free port) speaking the Glance v2 subset the agent
/// uses, counting every request it gets.
/// </summary>
internal sealed class FakeGlance : IAsyncDisposable
{
    public const string Token = "gAAAAABtest-token-for-the-fake-glance";

    private readonly WebApplication app;
    private readonly ConcurrentDictionary<string, FakeImage> images = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> hits = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> failuresLeft = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource stopping = new();
    private int abortedRequests;

    private FakeGlance(WebApplication app)
    {
        this.app = app;
        app.UsePathBase("/image");
        app.MapGet("/v2/images/{id}", MetadataAsync);
        app.MapGet("/v2/images/{id}/file", FileAsync);
        app.MapPost("/v2/images", CreateAsync);
        app.MapPut("/v2/images/{id}/file", UploadAsync);
        app.MapDelete("/v2/images/{id}", (string id, HttpContext context) =>
            Refuse(context, id, out _) ?? (images.TryRemove(id, out _) ? Results.NoContent() : Results.NotFound()));
    }

    /// <summary>Uploads (<c>PUT /v2/images/{id}/file</c>) wait for this before reading the data.</summary>
    public TaskCompletionSource? UploadGate { get; set; }

    /// <summary>Answer uploads with this status instead of storing the data (a Glance whose store fails).</summary>
    public HttpStatusCode? UploadStatus { get; set; }

    /// <summary>Set when an upload has arrived (and waits at <see cref="UploadGate"/>).</summary>
    public TaskCompletionSource UploadStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Whether the image record exists (an abandoned snapshot's must not).</summary>
    public bool Has(string id) => images.ContainsKey(id);

    /// <summary>http://127.0.0.1:PORT (also served under /image, as a catalog endpoint with a path).</summary>
    public Uri Endpoint { get; private set; } = null!;

    /// <summary>The X-Auth-Token of the last request.</summary>
    public string? LastToken { get; private set; }

    /// <summary>Requests the client went away from before the answer was complete.</summary>
    public int AbortedRequests => Volatile.Read(ref abortedRequests);

    public static async Task<FakeGlance> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var glance = new FakeGlance(builder.Build());
        await glance.app.StartAsync();
        var address = glance.app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        glance.Endpoint = new Uri(address);
        return glance;
    }

    public FakeImage Add(FakeImage image)
    {
        images[image.Id] = image;
        failuresLeft[image.Id] = image.FailFirstFiles;
        return image;
    }

    public int MetadataHits(string id) => hits.GetValueOrDefault($"meta:{id}");

    public int FileHits(string id) => hits.GetValueOrDefault($"file:{id}");

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        await app.StopAsync(CancellationToken.None);
        await app.DisposeAsync();
        stopping.Dispose();
    }

    /// <summary>The image document as Glance v2 shows it: its own attributes and the custom properties side by side.</summary>
    public static string Document(FakeImage image, string self)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", image.Id);
            json.WriteString("name", image.Name);
            json.WriteString("status", image.Status);
            json.WriteString("disk_format", image.DiskFormat);
            json.WriteString("container_format", image.ContainerFormat);
            json.WriteNumber("min_disk", 1);
            json.WriteNumber("min_ram", 128);
            json.WriteNumber("size", image.Size);
            if (image.VirtualSize is { } virtualSize)
            {
                json.WriteNumber("virtual_size", virtualSize);
            }
            else
            {
                json.WriteNull("virtual_size");
            }

            json.WriteString("checksum", image.Md5);
            json.WriteString("os_hash_algo", image.HashAlgorithm);
            json.WriteString("os_hash_value", image.HashValue);
            json.WriteString("visibility", "public");
            json.WriteBoolean("protected", false);
            json.WriteBoolean("os_hidden", false);
            json.WriteString("owner", "0ef6b2b5e1d54e8c8a1f1fba2c1d6b35");
            json.WriteStartArray("tags");
            json.WriteStringValue("test");
            json.WriteEndArray();
            json.WriteString("created_at", "2025-01-01T00:00:00Z");
            json.WriteString("updated_at", "2025-01-01T00:00:01Z");
            json.WriteString("self", self);
            json.WriteString("file", $"{self}/file");
            json.WriteString("schema", "/v2/schemas/image");
            json.WriteString("os_glance_importing_to_stores", string.Empty);
            foreach (var (key, value) in image.Properties)
            {
                json.WriteString(key, value);
            }

            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private async Task<IResult> MetadataAsync(string id, HttpContext context)
    {
        hits.AddOrUpdate($"meta:{id}", 1, (_, n) => n + 1);
        if (Refuse(context, id, out var image) is { } refusal)
        {
            return refusal;
        }

        if (image.StallMetadata)
        {
            await StallAsync(context);
            return Results.Empty;
        }

        return image.MetadataStatus is { } status
            ? Results.StatusCode((int)status)
            : Results.Text(Document(image, $"/v2/images/{id}"), "application/json");
    }

    private async Task FileAsync(string id, HttpContext context)
    {
        hits.AddOrUpdate($"file:{id}", 1, (_, n) => n + 1);
        if (Refuse(context, id, out var image) is { } refusal)
        {
            await refusal.ExecuteAsync(context);
            return;
        }

        if (failuresLeft.AddOrUpdate(id, 0, (_, n) => n - 1) >= 0)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }

        var aborted = context.RequestAborted;
        try
        {
            if (image.Gate is { } gate)
            {
                await gate.Task.WaitAsync(aborted);
            }

            var data = image.Data;
            if (image.CorruptInTransit)
            {
                data = [.. data];
                data[data.Length / 2] ^= 0x5a;
            }

            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = data.Length;
            var end = image.StallAfterBytes ?? data.Length;
            for (var offset = 0; offset < end; offset += 64 * 1024)
            {
                await context.Response.Body.WriteAsync(data.AsMemory(offset, Math.Min(64 * 1024, end - offset)), aborted);
            }

            await context.Response.Body.FlushAsync(aborted);
            if (image.StallAfterBytes is not null)
            {
                await StallAsync(context);
            }
        }
        catch (Exception) when (aborted.IsCancellationRequested)
        {
            Interlocked.Increment(ref abortedRequests);
        }
    }

    /// <summary><c>POST /v2/images</c>: a queued record with no data, as a snapshot's starts.</summary>
    private async Task<IResult> CreateAsync(HttpRequest request)
    {
        if (request.Headers["X-Auth-Token"] != Token)
        {
            return Results.StatusCode(StatusCodes.Status401Unauthorized);
        }

        using var body = await JsonDocument.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted);
        var image = Add(new FakeImage
        {
            Id = Guid.NewGuid().ToString(),
            Data = [],
            Status = "queued",
            Name = body.RootElement.GetProperty("name").GetString(),
            DiskFormat = body.RootElement.GetProperty("disk_format").GetString()!,
        });
        return Results.Text(Document(image, $"/v2/images/{image.Id}"), "application/json", statusCode: StatusCodes.Status201Created);
    }

    private async Task<IResult> UploadAsync(string id, HttpContext context)
    {
        if (Refuse(context, id, out var image) is { } refusal)
        {
            return refusal;
        }

        UploadStarted.TrySetResult();
        try
        {
            await (UploadGate?.Task ?? Task.CompletedTask).WaitAsync(context.RequestAborted);
            using var data = new MemoryStream();
            await context.Request.Body.CopyToAsync(data, context.RequestAborted);
            if (UploadStatus is { } status)
            {
                return Results.StatusCode((int)status);
            }

            images[id] = new FakeImage { Id = id, Data = data.ToArray(), Name = image.Name, DiskFormat = image.DiskFormat };
            return Results.NoContent();
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            Interlocked.Increment(ref abortedRequests);
            return Results.Empty;
        }
    }

    private IResult? Refuse(HttpContext context, string id, out FakeImage image)
    {
        LastToken = context.Request.Headers["X-Auth-Token"];
        image = null!;
        if (LastToken != Token)
        {
            return Results.StatusCode(StatusCodes.Status401Unauthorized);
        }

        return images.TryGetValue(id, out image!) ? null : Results.NotFound();
    }

    private async Task StallAsync(HttpContext context)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping.Token);
        try
        {
            await Task.Delay(Timeout.Infinite, both.Token);
        }
        catch (OperationCanceledException)
        {
            if (context.RequestAborted.IsCancellationRequested)
            {
                Interlocked.Increment(ref abortedRequests);
            }
        }
    }
}
