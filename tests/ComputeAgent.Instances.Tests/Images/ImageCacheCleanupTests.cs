using ComputeAgent.Instances.Images;
using ComputeAgent.Testing;
using Xunit;

namespace ComputeAgent.Instances.Tests.Images;

/// <summary>Removing base images nobody has used for a while, never one in use.</summary>
public sealed class ImageCacheCleanupTests : IAsyncLifetime
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private readonly HttpClient http = new();
    private readonly TestImages images = new();
    private readonly ManualTime clock = new(new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private FakeGlance glance = null!;
    private ImageCache cache = null!;

    public async Task InitializeAsync()
    {
        glance = await FakeGlance.StartAsync();
        cache = images.Cache(glance, http, images.Options() with { TimeProvider = clock });
    }

    public async Task DisposeAsync()
    {
        http.Dispose();
        await glance.DisposeAsync();
        images.Dispose();
    }

    [Fact]
    public async Task Old_unused_images_go_in_use_and_recently_used_ones_stay_and_an_in_use_image_counts_from_when_it_was_last_in_use()
    {
        var data = await images.Qcow2Async();
        var inUse = await CacheAsync(data);
        var unused = await CacheAsync(data);
        var recent = await CacheAsync(data);

        clock.Now += 2 * Hour;
        await cache.GetAsync(recent.Id, null, CancellationToken.None);
        var removed = await cache.RemoveUnusedAsync(Hour, new HashSet<string> { inUse.Id }, CancellationToken.None);

        Assert.Equal([unused.Id], removed);
        Assert.False(File.Exists(Path.Combine(images.CacheDirectory, unused.Id)));
        Assert.Equal(Expected(inUse, recent), images.CacheFiles());

        // The in-use image's instance is gone now: it is kept until it has been unused for an hour.
        clock.Now += Hour / 2;
        Assert.Empty(await cache.RemoveUnusedAsync(Hour, new HashSet<string>(), CancellationToken.None));
        clock.Now += Hour;
        var later = await cache.RemoveUnusedAsync(Hour, new HashSet<string>(), CancellationToken.None);

        Assert.Equal(new[] { inUse.Id, recent.Id }.Order(), later.Order());
        Assert.Empty(images.CacheFiles());
        Assert.Null(cache.TryGetPath(inUse.Id));

        // Removed means downloaded again when wanted again.
        var back = await cache.GetAsync(unused.Id, FakeGlance.Token, CancellationToken.None);
        Assert.Equal(2, glance.FileHits(unused.Id));
        Assert.Equal(TestImages.Sha512(data), TestImages.Sha512(back.Path));
    }

    [Fact]
    public async Task An_image_in_use_by_its_base_image_path_is_kept_and_TryGetPath_counts_as_a_use()
    {
        var data = await images.Qcow2Async();
        var byPath = await CacheAsync(data);
        var looked = await CacheAsync(data);
        var path = Path.Combine(images.CacheDirectory, byPath.Id);

        clock.Now += 3 * Hour;
        Assert.Equal(Path.Combine(images.CacheDirectory, looked.Id), cache.TryGetPath(looked.Id));
        var removed = await cache.RemoveUnusedAsync(Hour, new HashSet<string> { path }, CancellationToken.None);

        Assert.Empty(removed);
        Assert.Equal(Expected(byPath, looked), images.CacheFiles());
    }

    private static string[] Expected(params FakeImage[] kept) =>
        [.. kept.SelectMany(i => new[] { i.Id, $"{i.Id}.info" }).Order(StringComparer.Ordinal)];

    private async Task<FakeImage> CacheAsync(byte[] data)
    {
        var image = glance.Add(new FakeImage { Id = TestImages.NewId(), Data = data });
        await cache.GetAsync(image.Id, FakeGlance.Token, CancellationToken.None);
        return image;
    }
}
