using System.Collections.Concurrent;

namespace ComputeAgent.Host;

/// <summary>
/// Remembers the answer to each request id so that a retried request is answered with the first
/// answer and never done twice. Bounded: the oldest ids are forgotten past <see cref="Capacity"/>.
/// </summary>
public sealed class RequestLedger
{
    public const int Capacity = 10_000;
    private readonly ConcurrentDictionary<string, Lazy<Task<object>>> answers = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> order = new();

    /// <summary>Runs <paramref name="work"/> once per request id (always when the id is empty).</summary>
    public async Task<T> OnceAsync<T>(string requestId, Func<Task<T>> work)
        where T : class
    {
        if (string.IsNullOrEmpty(requestId))
        {
            return await work().ConfigureAwait(false);
        }

        var entry = new Lazy<Task<object>>(async () => await work().ConfigureAwait(false));
        var winner = answers.GetOrAdd(requestId, entry);
        if (ReferenceEquals(winner, entry))
        {
            order.Enqueue(requestId);
            while (order.Count > Capacity && order.TryDequeue(out var oldest))
            {
                answers.TryRemove(oldest, out _);
            }
        }

        try
        {
            return (T)await winner.Value.ConfigureAwait(false);
        }
        catch
        {
            // A failed request is not an answer to remember: a retry runs it again.
            answers.TryRemove(new KeyValuePair<string, Lazy<Task<object>>>(requestId, winner));
            throw;
        }
    }
}
