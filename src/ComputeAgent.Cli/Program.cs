using ComputeAgent.Cli;

return args switch
{
    ["walk", "--socket", var socket, "--image-id", var image] => await AgentWalk.RunAsync(socket, image, null, CancellationToken.None),
    ["walk", "--socket", var socket, "--image-id", var image, "--ready-line", var ready] => await AgentWalk.RunAsync(socket, image, ready, CancellationToken.None),
    ["image-server", "--dir", var dir, "--listen", var listen] => await ImageServer.RunAsync(dir, listen, CancellationToken.None),
    ["spawn", .. var rest] when AgentSpawn.Options.Parse(rest) is { } spawn => await AgentSpawn.RunAsync(spawn, CancellationToken.None),
    ["lifecycle", .. var rest] => await LifecycleWalk.RunAsync(LifecycleWalk.Options.Parse(rest), CancellationToken.None),
    ["domain-xml", "--socket", var socket, "--instance", var uuid] => await DomainXmlAsync(socket, uuid, inactive: false),
    ["domain-xml", "--socket", var socket, "--instance", var uuid, "--inactive"] => await DomainXmlAsync(socket, uuid, inactive: true),
    _ => Usage(),
};

static async Task<int> DomainXmlAsync(string socket, string uuid, bool inactive)
{
    using var channel = AgentChannel.ForSocket(socket);
    try
    {
        var reply = await new ComputeAgent.Api.V1.ComputeAgent.ComputeAgentClient(channel).GetDomainXmlAsync(new ComputeAgent.Api.V1.GetDomainXmlRequest { InstanceUuid = uuid, Inactive = inactive });
        Console.WriteLine(reply.Xml);
        return 0;
    }
    catch (Grpc.Core.RpcException ex)
    {
        Console.Error.WriteLine($"compute-agent-cli: {ex.StatusCode}: {ex.Status.Detail}");
        return 1;
    }
}

static int Usage()
{
    Console.Error.WriteLine("""
        usage:
          compute-agent-cli walk --socket /run/compute-agent/agent.sock --image-id ID [--ready-line TEXT]
              Spawns a guest through the agent and walks it through pause, unpause, suspend, resume,
              rescue, unrescue, resize, confirm resize, stop, start, hard reboot and delete,
              printing every state change the agent streams.
          compute-agent-cli spawn --socket SOCKET --image-id ID [--name NAME] [--public-key-file KEY.pub] [--key-name NAME]
                  [--user-data FILE] [--until TEXT] [--vcpus 1] [--ram-mib 512] [--root-gib 2]
              Boots an instance with a config drive (key pair, user data) and prints its serial
              console until a line containing TEXT appears.
          compute-agent-cli domain-xml --socket SOCKET --instance UUID [--inactive]
              Prints the instance's libvirt domain XML: the live one, or with --inactive the definition.
          compute-agent-cli image-server --dir DIR --listen 127.0.0.1:9292
              Serves DIR/*.{qcow2,raw,iso,aki,ari} as a Glance v2 image service (GET /v2/images/{id}[/file]);
              a sidecar FILE.json sets the image's id and properties: {"id": "...", "properties": {...}}.
          compute-agent-cli lifecycle --image DISK.qcow2 [--ready-line TEXT] [--uri qemu:///system] [--virt-type qemu|kvm] [--work-dir DIR]
              Walks a guest through its lifecycle with the bare libvirt wrapper (no agent).
        """);
    return 2;
}
