using Microsoft.Extensions.Options;

namespace ComputeAgent.Host;

/// <summary>
/// Hourly, removes base images that no instance on this host has used for
/// Agent:ImageCacheMaxUnusedHours (Nova's image cache manager); images of existing instances stay.
/// </summary>
public sealed partial class ImageCacheCleanup(AgentRuntime runtime, ImageSource images, IOptions<AgentOptions> options, ILogger<ImageCacheCleanup> logger) : BackgroundService
{
    private static readonly TimeSpan Period = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (images.Cache is not { } cache)
        {
            return;
        }

        using var timer = new PeriodicTimer(Period);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            if (runtime.Engine is not { } engine)
            {
                continue;
            }

            var inUse = engine.List().Select(r => r.Spec.Image.Id).ToHashSet(StringComparer.Ordinal);
            try
            {
                var removed = await cache.RemoveUnusedAsync(TimeSpan.FromHours(options.Value.ImageCacheMaxUnusedHours), inUse, stoppingToken).ConfigureAwait(false);
                if (removed.Count > 0)
                {
                    LogRemoved(logger, removed.Count, string.Join(", ", removed));
                }
            }
            catch (IOException ex)
            {
                LogFailed(logger, ex);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Image cache: removed {ImageCount} unused base images ({ImageIds})")]
    private static partial void LogRemoved(ILogger logger, int imageCount, string imageIds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Image cache cleanup failed; retrying in an hour")]
    private static partial void LogFailed(ILogger logger, Exception error);
}
