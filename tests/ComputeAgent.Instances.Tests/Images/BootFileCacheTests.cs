using ComputeAgent.Instances.Images;
using Xunit;

namespace ComputeAgent.Instances.Tests.Images;

/// <summary>Kernels (aki) and ramdisks (ari) for direct kernel boot: cached as they came, still checksummed.</summary>
public sealed class BootFileCacheTests : IAsyncLifetime
{
    private readonly HttpClient http = new();
    private readonly TestImages images = new();
    private FakeGlance glance = null!;

    public async Task InitializeAsync() => glance = await FakeGlance.StartAsync();

    public async Task DisposeAsync()
    {
        http.Dispose();
        await glance.DisposeAsync();
        images.Dispose();
    }

    [Theory]
    [InlineData("aki")]
    [InlineData("ari")]
    public async Task A_kernel_or_ramdisk_is_cached_byte_for_byte_without_conversion(string format)
    {
        // Not a disk image at all: qemu-img would call it raw, and converting it would ruin it.
        var data = "\u007fELF kernel bytes, not a disk"u8.ToArray();
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data, DiskFormat = format, ContainerFormat = format });
        var cache = images.Cache(glance, http);

        var cached = await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);

        Assert.Equal(data, await File.ReadAllBytesAsync(cached.Path));
        Assert.Equal(cache.PathOf(image.Id), cached.Path);
        Assert.Equal(format, cached.Meta.DiskFormat);
        Assert.Equal(ImageCacheFiles.ImageMode, File.GetUnixFileMode(cached.Path));
    }

    [Fact]
    public async Task A_kernel_damaged_in_transit_is_refused_and_leaves_nothing()
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = new byte[4096], DiskFormat = "aki", ContainerFormat = "aki", CorruptInTransit = true });
        var cache = images.Cache(glance, http);

        var refused = await Assert.ThrowsAsync<ImageServiceException>(() => cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None));

        Assert.Contains("damaged in transit", refused.Message, StringComparison.Ordinal);
        Assert.Empty(images.CacheFiles());
    }

    [Fact]
    public void A_path_for_an_id_that_could_leave_the_cache_is_refused()
    {
        var cache = images.Cache(glance, http);
        Assert.Throws<ArgumentException>(() => cache.PathOf("../etc/passwd"));
    }
}
