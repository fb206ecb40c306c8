using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// The Glance v2 subset a compute host needs: an image's metadata and its data, each request
/// carrying the caller's token in X-Auth-Token. Every failure is an <see cref="ImageServiceException"/>;
/// every wait is bounded (<see cref="GlanceClientOptions"/>); nothing is retried here, the caller decides.
/// </summary>
public sealed class GlanceClient
{
    private readonly HttpClient http;
    private readonly GlanceClientOptions options;
    private readonly Uri images;

    /// <param name="endpoint">Glance's endpoint from the catalog, e.g. http://controller:9292 (a trailing /v2 is accepted too).</param>
    public GlanceClient(HttpClient http, Uri endpoint, GlanceClientOptions? options = null)
    {
        this.http = http ?? throw new ArgumentNullException(nameof(http));
        ArgumentNullException.ThrowIfNull(endpoint);
        if (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"Agent:ImageServiceUrl '{endpoint}' is not an absolute http(s) URL", nameof(endpoint));
        }

        this.options = options ?? GlanceClientOptions.Default;
        this.options.Validate();
        Endpoint = endpoint;
        var root = endpoint.AbsoluteUri.TrimEnd('/');
        images = new Uri(root.EndsWith("/v2", StringComparison.Ordinal) ? $"{root}/images/" : $"{root}/v2/images/");
    }

    public Uri Endpoint { get; }

    /// <summary><c>GET /v2/images/{id}</c>: the image's metadata and the checksums its data must match.</summary>
    public Task<GlanceImage> GetImageAsync(string imageId, string? token, CancellationToken cancellationToken)
    {
        ImageIds.Check(imageId);
        var uri = new Uri(images, imageId);
        return WithinRequestTimeoutAsync(imageId, uri, async timeout =>
        {
            using var response = await SendAsync(imageId, uri, token, "application/json", timeout).ConfigureAwait(false);
            var body = await ReadMetadataAsync(imageId, uri, response, timeout).ConfigureAwait(false);
            try
            {
                return GlanceImageJson.Parse(imageId, body);
            }
            catch (InvalidDataException e)
            {
                throw new ImageServiceException(
                    ImageServiceErrorKind.BadResponse,
                    imageId,
                    $"the answer from {uri} is not a Glance v2 image: {e.Message}; check that Agent:ImageServiceUrl points at Glance's API",
                    e);
            }
        }, cancellationToken);
    }

    /// <summary>
    /// <c>GET /v2/images/{id}/file</c>: the image data as it streams in. Each read must deliver within
    /// <see cref="GlanceClientOptions.ReadStallTimeout"/>; read it with ReadAsync and dispose it.
    /// </summary>
    public Task<Stream> OpenImageDataAsync(string imageId, string? token, CancellationToken cancellationToken)
    {
        ImageIds.Check(imageId);
        var uri = new Uri(images, $"{imageId}/file");
        return WithinRequestTimeoutAsync<Stream>(imageId, uri, async timeout =>
        {
            var response = await SendAsync(imageId, uri, token, "application/octet-stream", timeout).ConfigureAwait(false);
            try
            {
                if (response.StatusCode == HttpStatusCode.NoContent)
                {
                    throw new ImageServiceException(
                        ImageServiceErrorKind.NotActive,
                        imageId,
                        "Glance has no data for it (204 No Content): it was never uploaded; upload the data or use another image");
                }

                var content = await response.Content.ReadAsStreamAsync(timeout).ConfigureAwait(false);
                return new ImageDataStream(imageId, response, content, options.ReadStallTimeout, options.Time);
            }
            catch
            {
                response.Dispose();
                throw;
            }
        }, cancellationToken);
    }

    /// <summary>
    /// <c>POST /v2/images</c>: a new image record (status queued) with <paramref name="properties"/>
    /// as its custom properties; returns its id. The data follows with <see cref="UploadImageDataAsync"/>.
    /// </summary>
    public Task<string> CreateImageAsync(string name, string diskFormat, IReadOnlyDictionary<string, string> properties, string? token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(properties);
        var uri = new Uri(images.AbsoluteUri.TrimEnd('/'));
        var body = new Dictionary<string, string>(properties, StringComparer.Ordinal)
        {
            ["name"] = name,
            ["disk_format"] = diskFormat,
            ["container_format"] = "bare",
            ["visibility"] = "private",
        };
        return WithinRequestTimeoutAsync(name, uri, options.RequestTimeout, async timeout =>
        {
            using var content = JsonContent.Create(body);
            using var response = await SendAsync(name, HttpMethod.Post, uri, content, token, "application/json", timeout).ConfigureAwait(false);
            var json = await ReadMetadataAsync(name, uri, response, timeout).ConfigureAwait(false);
            try
            {
                using var document = JsonDocument.Parse(json);
                return document.RootElement.GetProperty("id").GetString() ?? throw new InvalidDataException("id is null");
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidDataException)
            {
                throw new ImageServiceException(ImageServiceErrorKind.BadResponse, name, $"the answer from {uri} to creating an image has no image id ({e.Message}); check Agent:ImageServiceUrl", e);
            }
        }, cancellationToken);
    }

    /// <summary>
    /// <c>PATCH /v2/images/{id}</c>: sets the image's disk and container formats, which Glance needs
    /// before it takes data (Nova creates its snapshot's record without them and sets them with the upload).
    /// </summary>
    public Task SetFormatsAsync(string imageId, string diskFormat, string containerFormat, string? token, CancellationToken cancellationToken)
    {
        ImageIds.Check(imageId);
        var uri = new Uri(images, imageId);
        object[] patch =
        [
            new Dictionary<string, string> { ["op"] = "replace", ["path"] = "/disk_format", ["value"] = diskFormat },
            new Dictionary<string, string> { ["op"] = "replace", ["path"] = "/container_format", ["value"] = containerFormat },
        ];
        return WithinRequestTimeoutAsync(imageId, uri, options.RequestTimeout, async timeout =>
        {
            using var content = JsonContent.Create(patch, mediaType: new MediaTypeHeaderValue("application/openstack-images-v2.1-json-patch"));
            using var response = await SendAsync(imageId, HttpMethod.Patch, uri, content, token, "application/json", timeout).ConfigureAwait(false);
            return 0;
        }, cancellationToken);
    }

    /// <summary><c>PUT /v2/images/{id}/file</c>: the image's data from a local file, bounded by <see cref="GlanceClientOptions.UploadTimeout"/>.</summary>
    public Task UploadImageDataAsync(string imageId, string path, string? token, CancellationToken cancellationToken)
    {
        ImageIds.Check(imageId);
        var uri = new Uri(images, $"{imageId}/file");
        return WithinRequestTimeoutAsync(imageId, uri, options.UploadTimeout, async timeout =>
        {
            var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true);
            using var content = new StreamContent(file, 1 << 20);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Headers.ContentLength = file.Length;
            using var response = await SendAsync(imageId, HttpMethod.Put, uri, content, token, "application/json", timeout).ConfigureAwait(false);
            return 0;
        }, cancellationToken);
    }

    /// <summary>
    /// <c>GET /v2/images?key=value…&amp;sort_key=created_at&amp;sort_dir=desc</c>: the ids of the images
    /// whose properties match <paramref name="filters"/>, newest first (Glance filters on custom properties).
    /// </summary>
    public Task<IReadOnlyList<string>> ListImageIdsAsync(IReadOnlyDictionary<string, string> filters, string? token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(filters);
        var query = string.Join('&', filters.Select(f => $"{Uri.EscapeDataString(f.Key)}={Uri.EscapeDataString(f.Value)}"));
        var uri = new Uri($"{images.AbsoluteUri.TrimEnd('/')}?{query}&sort_key=created_at&sort_dir=desc&limit=1000");
        return WithinRequestTimeoutAsync<IReadOnlyList<string>>("(list)", uri, options.RequestTimeout, async timeout =>
        {
            using var response = await SendAsync("(list)", uri, token, "application/json", timeout).ConfigureAwait(false);
            var json = await ReadMetadataAsync("(list)", uri, response, timeout).ConfigureAwait(false);
            try
            {
                using var document = JsonDocument.Parse(json);
                return [.. document.RootElement.GetProperty("images").EnumerateArray().Select(i => i.GetProperty("id").GetString()!)];
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new ImageServiceException(ImageServiceErrorKind.BadResponse, "(list)", $"the answer from {uri} is not a Glance v2 image list ({e.Message}); check Agent:ImageServiceUrl", e);
            }
        }, cancellationToken);
    }

    /// <summary><c>DELETE /v2/images/{id}</c>; an image already gone counts as deleted.</summary>
    public Task DeleteImageAsync(string imageId, string? token, CancellationToken cancellationToken)
    {
        ImageIds.Check(imageId);
        var uri = new Uri(images, imageId);
        return WithinRequestTimeoutAsync(imageId, uri, options.RequestTimeout, async timeout =>
        {
            try
            {
                using var response = await SendAsync(imageId, HttpMethod.Delete, uri, content: null, token, "application/json", timeout).ConfigureAwait(false);
            }
            catch (ImageServiceException e) when (e.Kind == ImageServiceErrorKind.NotFound)
            {
            }

            return 0;
        }, cancellationToken);
    }

    private static ImageServiceException StatusError(string imageId, Uri uri, HttpResponseMessage response)
    {
        var status = $"{(int)response.StatusCode} {response.ReasonPhrase}".TrimEnd();
        return response.StatusCode switch
        {
            HttpStatusCode.NotFound => new(
                ImageServiceErrorKind.NotFound,
                imageId,
                $"Glance has no such image ({status} from {uri}): it does not exist, was deleted, or is not visible to the token's project; check the image id"),
            HttpStatusCode.Unauthorized => new(
                ImageServiceErrorKind.Unauthorized,
                imageId,
                $"Glance refused the token ({status}): it is missing, expired or invalid; retry with a fresh token"),
            HttpStatusCode.Forbidden => new(
                ImageServiceErrorKind.Forbidden,
                imageId,
                $"the token's project may not read this image ({status}); share the image with the project or use one it can see"),
            HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests or >= HttpStatusCode.InternalServerError => new(
                ImageServiceErrorKind.Unavailable,
                imageId,
                $"the image service answered {status} at {uri}; it is down or overloaded, retry later"),
            _ => new(
                ImageServiceErrorKind.BadResponse,
                imageId,
                $"the image service answered {status} at {uri}, which the Glance v2 API does not answer here; check Agent:ImageServiceUrl"),
        };
    }

    private Task<HttpResponseMessage> SendAsync(string imageId, Uri uri, string? token, string accept, CancellationToken cancellationToken) =>
        SendAsync(imageId, HttpMethod.Get, uri, content: null, token, accept, cancellationToken);

    private async Task<HttpResponseMessage> SendAsync(string imageId, HttpMethod method, Uri uri, HttpContent? content, string? token, string accept, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, uri) { Content = content };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(accept));
        if (token is not null)
        {
            // A token is opaque, but a control character in it would split the header.
            if (token.Length == 0 || token.Any(char.IsControl))
            {
                throw new ImageServiceException(ImageServiceErrorKind.Unauthorized, imageId, "the token is empty or contains control characters; pass the token Keystone issued");
            }

            request.Headers.TryAddWithoutValidation("X-Auth-Token", token);
        }

        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            throw StatusError(imageId, uri, response);
        }
    }

    private async Task<ReadOnlyMemory<byte>> ReadMetadataAsync(string imageId, Uri uri, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var limit = options.MaxMetadataBytes;
        if (response.Content.Headers.ContentLength > limit)
        {
            throw TooLongMetadata(imageId, uri);
        }

        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var buffer = new byte[limit + 1];
            var length = 0;
            int read;
            while ((read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false)) > 0)
            {
                length += read;
                if (length > limit)
                {
                    throw TooLongMetadata(imageId, uri);
                }
            }

            return buffer.AsMemory(0, length);
        }
    }

    private ImageServiceException TooLongMetadata(string imageId, Uri uri) => new(
        ImageServiceErrorKind.BadResponse,
        imageId,
        $"the metadata from {uri} is larger than {options.MaxMetadataBytes} bytes, which no Glance image is; check Agent:ImageServiceUrl");

    /// <summary>Runs one request under the request timeout and turns transport failures into typed ones.</summary>
    private Task<T> WithinRequestTimeoutAsync<T>(string imageId, Uri uri, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken) =>
        WithinRequestTimeoutAsync(imageId, uri, options.RequestTimeout, call, cancellationToken);

    private async Task<T> WithinRequestTimeoutAsync<T>(string imageId, Uri uri, TimeSpan limit, Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        using var timer = new CancellationTokenSource(limit, options.Time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            return await call(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            // Ours or HttpClient.Timeout: either way the service did not answer in time.
            throw new ImageServiceException(
                ImageServiceErrorKind.Timeout,
                imageId,
                $"no answer from {uri} within {limit.TotalSeconds:0.###} s; check that Glance is up and reachable from this host, then retry",
                e);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            throw new ImageServiceException(
                ImageServiceErrorKind.Unavailable,
                imageId,
                $"cannot reach the image service at {uri} ({e.Message}); check Agent:ImageServiceUrl and that Glance is up, then retry",
                e);
        }
    }
}
