using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ComputeAgent.Host.Controller;

/// <summary>grpc.health.v1 service "controller": SERVING while the Report stream is up.</summary>
public sealed class ControllerLinkHealth(ControllerLink link) : IHealthCheck
{
    public const string Name = "controller";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(link.IsConnected ? HealthCheckResult.Healthy(link.State) : HealthCheckResult.Unhealthy(link.State));
}
