using System.Diagnostics;
using System.Diagnostics.Metrics;
using ComputeAgent.Libvirt;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// The host's base-image cache (Nova's <c>_base</c>): each Glance image downloaded once, verified,
/// inspected, converted to qcow2 and kept as the backing file of the overlays spawned from it.
/// One download per image however many spawns ask at once; a failed one is not remembered, so the
/// next caller tries again. Base images nobody has used for a set time are removed.
/// </summary>
public sealed partial class ImageCache
{
    private readonly GlanceClient glance;
    private readonly ILogger<ImageCache> logger;
    private readonly TimeProvider time;
    private readonly ImageCacheFiles files;
    private readonly BaseImageBuilder builder;

    // Guards the flights and makes "is it cached, mark it used" exclusive with "is it old, remove it".
    private readonly Lock gate = new();

    private static readonly Counter<long> Hits = AgentMeter.Meter.CreateCounter<long>("image_cache_hits_total", description: "Base image requests the cache answered from disk.");
    private static readonly Counter<long> Misses = AgentMeter.Meter.CreateCounter<long>("image_cache_misses_total", description: "Base image requests that had to download the image (or wait for its download).");
    private readonly Dictionary<string, Flight> flights = new(StringComparer.Ordinal);

    /// <summary>Creates the cache directory if needed and removes what an interrupted run left in it.</summary>
    public ImageCache(GlanceClient glance, ImageCacheOptions options, ILogger<ImageCache> logger)
    {
        this.glance = glance ?? throw new ArgumentNullException(nameof(glance));
        ArgumentNullException.ThrowIfNull(options);
        this.logger = logger ?? throw new ArgumentNullException(nameof(logger));
        options.Validate();
        time = options.TimeProvider;
        files = new ImageCacheFiles(options.Directory);
        builder = new BaseImageBuilder(glance, options, files);
        var leftovers = files.Prepare();
        if (leftovers > 0)
        {
            LogLeftoversRemoved(leftovers, files.Directory);
        }
    }

    public string Directory => files.Directory;

    /// <summary>Bytes the cached base images and their info files take (downloads under way are in a subfolder, not counted).</summary>
    public long SizeBytes => new DirectoryInfo(files.Directory).EnumerateFiles().Sum(f => f.Length);

    /// <summary>Where the image's cached file is (or will be once fetched); the id is checked, so the path stays in the cache.</summary>
    public string PathOf(string imageId)
    {
        ImageIds.Check(imageId);
        return files.ImagePath(imageId);
    }

    /// <summary>
    /// The image's base image, downloaded first if it is not cached. Concurrent callers for one
    /// image share one download; a caller that gives up stops waiting, and the download stops when
    /// every caller has given up.
    /// </summary>
    /// <param name="token">The caller's Keystone token for Glance; not needed when the image is cached.</param>
    /// <exception cref="ImageServiceException">The image could not be had; the message says why and what to do.</exception>
    public Task<CachedImage> GetAsync(string imageId, string? token, CancellationToken cancellationToken) =>
        GetAsync(imageId, known: null, token, cancellationToken);

    /// <summary>As <see cref="GetAsync(string, string?, CancellationToken)"/>, with the image's metadata already read from Glance (not asked for again on a miss).</summary>
    public Task<CachedImage> GetAsync(GlanceImage image, string? token, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(image);
        return GetAsync(image.Meta.Id, image, token, cancellationToken);
    }

    private async Task<CachedImage> GetAsync(string imageId, GlanceImage? known, string? token, CancellationToken cancellationToken)
    {
        ImageIds.Check(imageId);
        cancellationToken.ThrowIfCancellationRequested();
        Flight flight;
        lock (gate)
        {
            if (files.TryRead(imageId) is { } entry)
            {
                files.Touch(imageId, time.GetUtcNow());
                Hits.Add(1);
                return new CachedImage(files.ImagePath(imageId), entry.Meta, entry.VirtualSize);
            }

            // A miss whether this call starts the download or joins one under way.
            Misses.Add(1);

            if (flights.TryGetValue(imageId, out var running))
            {
                flight = running;
            }
            else
            {
                var started = flight = new Flight();
                flights.Add(imageId, started);
                started.Download = Task.Run(() => DownloadAsync(imageId, known, token, started), CancellationToken.None);
            }

            flight.Waiters++;
        }

        try
        {
            return await flight.Download.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Leave(imageId, flight);
        }
    }

    /// <summary>The base image's path when it is already cached (and marks it used), else null.</summary>
    public string? TryGetPath(string imageId)
    {
        if (!ImageIds.IsValid(imageId))
        {
            return null;
        }

        lock (gate)
        {
            if (!files.IsCached(imageId))
            {
                return null;
            }

            files.Touch(imageId, time.GetUtcNow());
            return files.ImagePath(imageId);
        }
    }

    /// <summary>
    /// Removes the base images unused for <paramref name="olderThan"/>. An image in
    /// <paramref name="inUse"/> (by image id or base-image path) is never removed and counts as used
    /// now, so its time starts when its last instance goes; an image being downloaded is left alone.
    /// </summary>
    /// <returns>The ids of the images removed.</returns>
    public Task<IReadOnlyList<string>> RemoveUnusedAsync(TimeSpan olderThan, IReadOnlySet<string> inUse, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(olderThan, TimeSpan.Zero);
        ArgumentNullException.ThrowIfNull(inUse);
        return Task.Run<IReadOnlyList<string>>(() => RemoveUnused(olderThan, inUse, cancellationToken), cancellationToken);
    }

    private List<string> RemoveUnused(TimeSpan olderThan, IReadOnlySet<string> inUse, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var removed = new List<string>();
        foreach (var imageId in files.CachedIds().ToList())
        {
            cancellationToken.ThrowIfCancellationRequested();
            DateTimeOffset lastUse;
            lock (gate)
            {
                if (flights.ContainsKey(imageId) || !files.IsCached(imageId))
                {
                    continue;
                }

                if (inUse.Contains(imageId) || inUse.Contains(files.ImagePath(imageId)))
                {
                    files.Touch(imageId, now);
                    continue;
                }

                lastUse = files.LastUse(imageId);
                if (now - lastUse < olderThan)
                {
                    continue;
                }

                files.Remove(imageId);
            }

            removed.Add(imageId);
            LogRemoved(imageId, lastUse);
        }

        return removed;
    }

    private async Task<CachedImage> DownloadAsync(string imageId, GlanceImage? known, string? token, Flight flight)
    {
        var cancellationToken = flight.Cancellation.Token;
        try
        {
            var started = Stopwatch.GetTimestamp();
            var image = known ?? await glance.GetImageAsync(imageId, token, cancellationToken).ConfigureAwait(false);
            LogDownloading(imageId, image.Meta.DiskFormat, image.Size);
            var prepared = await builder.BuildAsync(image, token, cancellationToken).ConfigureAwait(false);
            var now = time.GetUtcNow();
            var entry = new CacheEntry(image.Meta, prepared.Info.VirtualSize, prepared.Info.Format, prepared.Size, prepared.HashAlgorithm, prepared.HashValue, now);
            files.Commit(imageId, prepared.Path, entry, now);
            LogCached(imageId, prepared.Size, prepared.HashAlgorithm ?? "no checksum", prepared.Info.Format, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return new CachedImage(files.ImagePath(imageId), image.Meta, prepared.Info.VirtualSize);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogFailed(imageId, e.Message);
            throw;
        }
        finally
        {
            bool abandoned;
            lock (gate)
            {
                flight.Done = true;
                abandoned = flight.Abandoned;
                if (flights.TryGetValue(imageId, out var current) && current == flight)
                {
                    flights.Remove(imageId);
                }
            }

            // An abandoned flight's source is cancelled by the last waiter, outside the lock; disposing it here could race that.
            if (!abandoned)
            {
                flight.Cancellation.Dispose();
            }
        }
    }

    /// <summary>A caller stops waiting; when it was the last one, the download is stopped.</summary>
    private void Leave(string imageId, Flight flight)
    {
        lock (gate)
        {
            flight.Waiters--;
            if (flight.Waiters > 0 || flight.Done)
            {
                return;
            }

            flight.Abandoned = true;

            // The next caller starts afresh rather than joining a download being cancelled.
            if (flights.TryGetValue(imageId, out var current) && current == flight)
            {
                flights.Remove(imageId);
            }
        }

        flight.Cancellation.Cancel();
        _ = flight.Download.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed {FileCount} leftover temp file(s) of interrupted downloads from {CacheDirectory}")]
    private partial void LogLeftoversRemoved(int fileCount, string cacheDirectory);

    [LoggerMessage(Level = LogLevel.Information, Message = "Image {ImageId}: downloading ({DiskFormat}, {SizeBytes} bytes)")]
    private partial void LogDownloading(string imageId, string diskFormat, long? sizeBytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Image {ImageId}: cached ({SizeBytes} bytes, {HashAlgorithm} verified, {SourceFormat} to qcow2) in {ElapsedMs} ms")]
    private partial void LogCached(string imageId, long sizeBytes, string hashAlgorithm, string sourceFormat, long elapsedMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Image {ImageId}: not cached: {Reason}")]
    private partial void LogFailed(string imageId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Image {ImageId}: base image removed, unused since {LastUse:o}")]
    private partial void LogRemoved(string imageId, DateTimeOffset lastUse);

    /// <summary>One download and the callers waiting for it; every field is guarded by the cache's gate.</summary>
    private sealed class Flight
    {
        public CancellationTokenSource Cancellation { get; } = new();

        public Task<CachedImage> Download { get; set; } = null!;

        public int Waiters { get; set; }

        public bool Done { get; set; }

        public bool Abandoned { get; set; }
    }
}
