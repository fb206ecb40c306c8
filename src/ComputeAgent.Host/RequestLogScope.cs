using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace ComputeAgent.Host;

/// <summary>
/// Every log entry written while a call runs carries the call's request_id and instance_uuid
/// (REQUEST_ID, INSTANCE_UUID in the journal), so one request can be followed through the agent.
/// </summary>
public sealed class RequestLogScope(ILogger<RequestLogScope> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        using var scope = Begin(request);
        return await continuation(request, context).ConfigureAwait(false);
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        ArgumentNullException.ThrowIfNull(continuation);
        using var scope = Begin(request);
        await continuation(request, responseStream, context).ConfigureAwait(false);
    }

    private IDisposable? Begin<TRequest>(TRequest request)
    {
        if (request is not IMessage message)
        {
            return null;
        }

        var properties = new List<KeyValuePair<string, object?>>(2);
        foreach (var (field, property) in new[] { ("request_id", "RequestId"), ("instance_uuid", "InstanceUuid") })
        {
            if (message.Descriptor.FindFieldByName(field)?.Accessor.GetValue(message) is string { Length: > 0 } value)
            {
                properties.Add(new(property, value));
            }
        }

        return properties.Count > 0 ? logger.BeginScope(properties) : null;
    }
}
