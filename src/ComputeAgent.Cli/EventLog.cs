using ComputeAgent.Api.V1;
using Grpc.Core;

namespace ComputeAgent.Cli;

/// <summary>The agent's event log read through WatchInstances: once (replay_only) or followed.</summary>
internal static class EventLog
{
    /// <summary>
    /// Logged changes after <paramref name="after"/>, of one instance or all. Not following: the
    /// log as it is (0: all of it), then the stream ends. Following: then every new change until
    /// cancelled (0: only new ones).
    /// </summary>
    public static async IAsyncEnumerable<InstanceEvent> ReadAsync(Api.V1.ComputeAgent.ComputeAgentClient client, string? uuid, long after, bool follow, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var watch = client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid ?? string.Empty, AfterSequence = after, ReplayOnly = !follow }, cancellationToken: cancellationToken);
        await foreach (var e in watch.ResponseStream.ReadAllAsync(cancellationToken))
        {
            yield return e;
        }
    }

    /// <summary>
    /// The log's last sequence number now, from the instance's snapshot event; null when the agent
    /// has no such live instance (unknown or deleted).
    /// </summary>
    public static async Task<long?> LastSequenceAsync(Api.V1.ComputeAgent.ComputeAgentClient client, string uuid, CancellationToken cancellationToken)
    {
        using var watch = client.WatchInstances(new WatchInstancesRequest { InstanceUuid = uuid, Snapshot = true, ReplayOnly = true }, cancellationToken: cancellationToken);
        long? last = null;
        await foreach (var e in watch.ResponseStream.ReadAllAsync(cancellationToken))
        {
            last = e.Sequence;
        }

        return last;
    }
}
