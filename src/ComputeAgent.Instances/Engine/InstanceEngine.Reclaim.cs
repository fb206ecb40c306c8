using ComputeAgent.Instances.StateModel;
using Microsoft.Extensions.Logging;

namespace ComputeAgent.Instances.Engine;

public sealed partial class InstanceEngine
{
    /// <summary>How often the reclaim pass looks for soft-deleted instances past the interval.</summary>
    private TimeSpan ReclaimPassInterval => options.ReclaimInstanceInterval < TimeSpan.FromMinutes(1) ? options.ReclaimInstanceInterval : TimeSpan.FromMinutes(1);

    private async Task ReclaimLoopAsync(CancellationToken cancellationToken)
    {
        if (options.ReclaimInstanceInterval == TimeSpan.Zero)
        {
            return; // soft delete deletes at once: nothing ever waits to be reclaimed
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(ReclaimPassInterval, time, cancellationToken).ConfigureAwait(false);
                await ReclaimAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Deletes the soft-deleted instances that have stayed so longer than reclaim_instance_interval
    /// (counted from their last change, which for an idle SOFT_DELETED instance is the soft delete).
    /// Returns how many deletes it started.
    /// </summary>
    public async Task<int> ReclaimAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var started = 0;
        foreach (var record in List())
        {
            if (record is { VmState: VmState.SoftDeleted, TaskState: TaskState.None } && now - record.UpdatedAt >= options.ReclaimInstanceInterval)
            {
                try
                {
                    await SubmitAsync(record.Uuid, InstanceCommand.Delete, cancellationToken).ConfigureAwait(false);
                    LogReclaimed(logger, record.Uuid, record.UpdatedAt);
                    started++;
                }
                catch (InstanceCommandRefusedException)
                {
                    // Restored or deleted in between: nothing to reclaim.
                }
            }
        }

        return started;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Instance {InstanceUuid}: soft-deleted since {SoftDeletedAt}, past reclaim_instance_interval; deleting")]
    private static partial void LogReclaimed(ILogger logger, Guid instanceUuid, DateTimeOffset softDeletedAt);
}
