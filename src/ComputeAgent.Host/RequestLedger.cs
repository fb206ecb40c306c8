using System.Collections.Concurrent;
using Google.Protobuf;

namespace ComputeAgent.Host;

/// <summary>
/// Remembers the answer to each request id so that a retried request is answered with the first
/// answer and never done twice, also after an agent restart: answers are kept in the state
/// database for <see cref="Retention"/>. Requests in flight are joined in memory (bounded: the
/// oldest ids are forgotten past <see cref="Capacity"/>; the database still has them).
/// </summary>
public sealed class RequestLedger(AgentRuntime runtime, TimeProvider time)
{
    public const int Capacity = 10_000;

    /// <summary>How long an answer is remembered (a controller retries within minutes, not days).</summary>
    public static readonly TimeSpan Retention = TimeSpan.FromHours(24);

    private readonly ConcurrentDictionary<string, Lazy<Task<object>>> answers = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> order = new();

    /// <summary>Runs <paramref name="work"/> once per request id (always when the id is empty).</summary>
    public async Task<T> OnceAsync<T>(string requestId, Func<Task<T>> work)
        where T : class, IMessage<T>, new()
    {
        if (string.IsNullOrEmpty(requestId))
        {
            return await work().ConfigureAwait(false);
        }

        var entry = new Lazy<Task<object>>(async () => await FirstAnswerAsync(requestId, work).ConfigureAwait(false));
        var winner = answers.GetOrAdd(requestId, entry);
        if (ReferenceEquals(winner, entry))
        {
            order.Enqueue(requestId);
            while (order.Count > Capacity && order.TryDequeue(out var oldest))
            {
                answers.TryRemove(oldest, out _);
            }
        }

        object answer;
        try
        {
            answer = await winner.Value.ConfigureAwait(false);
        }
        catch
        {
            // A failed request is not an answer to remember: a retry runs it again.
            answers.TryRemove(new KeyValuePair<string, Lazy<Task<object>>>(requestId, winner));
            throw;
        }

        return answer as T ?? throw Reused(requestId, answer.GetType().Name);
    }

    private static ArgumentException Reused(string requestId, string firstKind) =>
        new($"request_id {requestId} was already used for a different call (answered with {firstKind}); use a new request id for a new request");

    private async Task<T> FirstAnswerAsync<T>(string requestId, Func<Task<T>> work)
        where T : class, IMessage<T>, new()
    {
        var kind = typeof(T).Name;
        var store = runtime.Store;
        if (store is not null && await store.FindAnswerAsync(requestId).ConfigureAwait(false) is { } remembered)
        {
            return remembered.Method == kind
                ? new MessageParser<T>(() => new T()).ParseFrom(remembered.Answer)
                : throw Reused(requestId, remembered.Method);
        }

        var answer = await work().ConfigureAwait(false);
        if (store is not null)
        {
            var at = time.GetUtcNow();
            await store.RememberAnswerAsync(requestId, kind, answer.ToByteArray(), at, at - Retention).ConfigureAwait(false);
        }

        return answer;
    }
}
