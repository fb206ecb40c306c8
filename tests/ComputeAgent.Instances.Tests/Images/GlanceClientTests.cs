using System.Net;
using System.Net.Sockets;
using ComputeAgent.Instances.Images;
using Microsoft.Extensions.Time.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Images;

/// <summary>The Glance v2 client against a real HTTP server.</summary>
public sealed class GlanceClientTests : IAsyncLifetime
{
    private static readonly GlanceClientOptions Quick = new() { RequestTimeout = TimeSpan.FromMilliseconds(800), ReadStallTimeout = TimeSpan.FromMilliseconds(500) };
    private readonly HttpClient http = new();
    private FakeGlance glance = null!;

    public async Task InitializeAsync() => glance = await FakeGlance.StartAsync();

    public async Task DisposeAsync()
    {
        http.Dispose();
        await glance.DisposeAsync();
    }

    [Fact]
    public async Task Metadata_becomes_ImageMeta_with_custom_properties_and_the_checksums_and_the_token_is_sent()
    {
        var image = glance.Add(new FakeImage
        {
            Id = TestImages.NewId(),
            Data = [1, 2, 3, 4],
            DiskFormat = "raw",
            Name = "cirros",
            Properties = { ["hw_disk_bus"] = "scsi", ["hw_scsi_model"] = "virtio-scsi", ["os_distro"] = "cirros" },
        });
        var client = new GlanceClient(http, glance.Endpoint);

        var got = await client.GetImageAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(FakeGlance.Token, glance.LastToken);
        Assert.Equal(image.Id, got.Id);
        Assert.Equal(("raw", "bare", 1, 128, "cirros"), (got.Meta.DiskFormat, got.Meta.ContainerFormat, got.Meta.MinDiskGiB, got.Meta.MinRamMiB, got.Meta.Name));
        Assert.Equal(("active", 4L, image.Md5, "sha512", image.HashValue), (got.Status, got.Size, got.Checksum, got.HashAlgorithm, got.HashValue));
        Assert.True(got.IsActive);

        // Glance's own attributes (owner, visibility, self, os_glance_*) are not image properties.
        Assert.Equal(
            new Dictionary<string, string> { ["hw_disk_bus"] = "scsi", ["hw_scsi_model"] = "virtio-scsi", ["os_distro"] = "cirros" },
            got.Meta.Properties);
        got.Meta.Validate();
    }

    [Theory]
    [InlineData("http://HOST/image")]
    [InlineData("http://HOST/image/v2/")]
    [InlineData("http://HOST")]
    public async Task An_endpoint_with_a_path_or_a_version_reaches_the_same_image(string endpoint)
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [9] });
        var client = new GlanceClient(http, new Uri(endpoint.Replace("HOST", glance.Endpoint.Authority, StringComparison.Ordinal)));

        var got = await client.GetImageAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(image.Id, got.Id);
        Assert.Equal(1, glance.MetadataHits(image.Id));
    }

    [Theory]
    [InlineData(HttpStatusCode.NotFound, ImageServiceErrorKind.NotFound, "check the image id")]
    [InlineData(HttpStatusCode.Unauthorized, ImageServiceErrorKind.Unauthorized, "retry with a fresh token")]
    [InlineData(HttpStatusCode.Forbidden, ImageServiceErrorKind.Forbidden, "share the image")]
    [InlineData(HttpStatusCode.ServiceUnavailable, ImageServiceErrorKind.Unavailable, "retry later")]
    [InlineData(HttpStatusCode.Conflict, ImageServiceErrorKind.BadResponse, "check Agent:ImageServiceUrl")]
    public async Task Each_refusal_is_one_typed_error_that_says_what_to_do(HttpStatusCode status, ImageServiceErrorKind kind, string advice)
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1], MetadataStatus = status });
        var client = new GlanceClient(http, glance.Endpoint);

        var error = await Assert.ThrowsAsync<ImageServiceException>(() => client.GetImageAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Equal(kind, error.Kind);
        Assert.Equal(image.Id, error.ImageId);
        Assert.Contains($"image {image.Id}: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message, StringComparison.Ordinal);
        Assert.Contains(advice, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_image_and_a_wrong_token_are_told_apart_at_the_real_server()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1] });
        var client = new GlanceClient(http, glance.Endpoint);

        var missing = await Assert.ThrowsAsync<ImageServiceException>(() => client.GetImageAsync(TestImages.NewId(), FakeGlance.Token, CancellationToken.None));
        var wrongToken = await Assert.ThrowsAsync<ImageServiceException>(() => client.OpenImageDataAsync(image.Id, "expired", CancellationToken.None));
        var noToken = await Assert.ThrowsAsync<ImageServiceException>(() => client.GetImageAsync(image.Id, null, CancellationToken.None));

        Assert.Equal(ImageServiceErrorKind.NotFound, missing.Kind);
        Assert.Equal(ImageServiceErrorKind.Unauthorized, wrongToken.Kind);
        Assert.Equal(ImageServiceErrorKind.Unauthorized, noToken.Kind);
        Assert.Null(glance.LastToken);
    }

    [Fact]
    public async Task A_stalled_metadata_request_times_out_when_the_request_timeout_has_passed_on_its_clock()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1], StallMetadata = true });
        var time = new FakeTimeProvider();
        var client = new GlanceClient(http, glance.Endpoint, Quick with { Time = time });

        // The timer starts with the call; the server never answers, so only the clock can end it.
        var call = client.GetImageAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        await TestImages.WaitUntilAsync(() => glance.MetadataHits(image.Id) == 1);
        time.Advance(TimeSpan.FromMilliseconds(799));
        await Task.Yield();
        Assert.False(call.IsCompleted, "the request ended before its 0.8 s timeout had passed");
        time.Advance(TimeSpan.FromMilliseconds(1));
        var error = await Assert.ThrowsAsync<ImageServiceException>(() => call);

        Assert.Equal(ImageServiceErrorKind.Timeout, error.Kind);
        Assert.Contains("within 0.8 s", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_download_that_stops_sending_fails_once_the_stall_timeout_has_passed_with_the_bytes_received()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = new byte[1 << 20], StallAfterBytes = 100_000 });
        var time = new FakeTimeProvider();
        var client = new GlanceClient(http, glance.Endpoint, Quick with { Time = time });
        await using var data = await client.OpenImageDataAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        var buffer = new byte[1 << 20];
        long received = 0;
        while (received < 100_000)
        {
            var read = await data.ReadAsync(buffer);
            Assert.NotEqual(0, read);
            received += read;
        }

        // The read after the last byte: its stall timer starts with the call, on the fake clock.
        var stalled = data.ReadAsync(buffer).AsTask();
        time.Advance(TimeSpan.FromMilliseconds(499));
        await Task.Yield();
        Assert.False(stalled.IsCompleted, "the read ended before its 0.5 s stall timeout had passed");
        time.Advance(TimeSpan.FromMilliseconds(1));
        var error = await Assert.ThrowsAsync<ImageServiceException>(() => stalled);

        Assert.Equal(ImageServiceErrorKind.Timeout, error.Kind);
        Assert.Equal(100_000, received);
        Assert.Contains("no data for 0.5 s after 100000 bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_data_streams_byte_for_byte()
    {
        var bytes = new byte[300_000];
        new Random(7).NextBytes(bytes);
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = bytes });
        var client = new GlanceClient(http, glance.Endpoint);

        await using var data = await client.OpenImageDataAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        using var copy = new MemoryStream();
        await data.CopyToAsync(copy);

        Assert.Equal(bytes, copy.ToArray());
        Assert.Equal(1, glance.FileHits(image.Id));
    }

    [Fact]
    public async Task A_closed_port_is_unavailable_and_a_non_glance_answer_is_a_bad_response()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var nowhere = new GlanceClient(http, new Uri($"http://127.0.0.1:{port}"));
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1] });
        var other = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1] });

        var unreachable = await Assert.ThrowsAsync<ImageServiceException>(() => nowhere.GetImageAsync(image.Id, FakeGlance.Token, CancellationToken.None));
        Assert.Equal(ImageServiceErrorKind.Unavailable, unreachable.Kind);
        Assert.Contains("check Agent:ImageServiceUrl", unreachable.Message, StringComparison.Ordinal);

        // Asking for one id and getting another document back is not Glance's API.
        var json = FakeGlance.Document(other, "/x");
        var parse = Assert.Throws<InvalidDataException>(() => GlanceImageJson.Parse(image.Id, System.Text.Encoding.UTF8.GetBytes(json)));
        Assert.Contains($"got image {other.Id}", parse.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => GlanceImageJson.Parse(image.Id, "<html>login</html>"u8.ToArray()));
    }

    [Theory]
    [InlineData("../../etc")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("")]
    public async Task Ids_that_could_leave_the_url_or_the_cache_directory_are_refused_before_any_request(string id)
    {
        var client = new GlanceClient(http, glance.Endpoint);

        await Assert.ThrowsAsync<ArgumentException>(() => client.GetImageAsync(id, FakeGlance.Token, CancellationToken.None));
        Assert.Null(glance.LastToken);
    }

    [Fact]
    public async Task An_image_glance_shows_larger_than_the_flavors_root_disk_is_refused_naming_both_sizes()
    {
        const long gib = 1L << 30;
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = [1, 2, 3, 4], VirtualSize = 10 * gib });
        var got = await new GlanceClient(http, glance.Endpoint).GetImageAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        Assert.Equal(10 * gib, got.VirtualSize);

        var refused = Assert.Throws<Model.FlavorDiskSmallerThanImageException>(() => got.CheckFits(new Model.Flavor("m1.tiny", 1, 256, RootGiB: 1)));
        Assert.Equal((gib, 10 * gib), (refused.FlavorBytes, refused.ImageBytes));
        Assert.Contains("the root disk is 1073741824 bytes (1 GiB), the image's virtual size is 10737418240 bytes (10 GiB)", refused.Message, StringComparison.Ordinal);
        Assert.Contains("root_gib 10 or more", refused.Message, StringComparison.Ordinal);

        // root_gib 0 takes the image's size; a root disk as large as the image fits.
        got.CheckFits(new Model.Flavor("m1.zero", 1, 256, RootGiB: 0));
        got.CheckFits(new Model.Flavor("m1.large", 1, 256, RootGiB: 10));

        // Without virtual_size, Glance's size (bytes of data) is what it knows, as Nova's API checks it.
        var unknown = got with { VirtualSize = null, Size = 2 * gib };
        Assert.Contains("the image's size is 2147483648 bytes", Assert.Throws<Model.FlavorDiskSmallerThanImageException>(() => unknown.CheckFits(new Model.Flavor("m1.tiny", 1, 256, RootGiB: 1))).Message, StringComparison.Ordinal);
    }
}
