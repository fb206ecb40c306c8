using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ComputeAgent.Host;

/// <summary>grpc.health.v1: NOT_SERVING until recovery has finished and libvirt is connected.</summary>
public sealed class AgentHealth(AgentRuntime runtime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(
            !runtime.IsReady ? HealthCheckResult.Unhealthy("starting: recovering instances and connecting to libvirt")
            : runtime.Session is not { IsConnected: true } ? HealthCheckResult.Unhealthy("libvirt is not connected; reconnecting")
            : HealthCheckResult.Healthy());
}
