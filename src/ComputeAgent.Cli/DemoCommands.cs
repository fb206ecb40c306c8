using System.CommandLine;

namespace ComputeAgent.Cli;

/// <summary>`demo`: the demonstration and test tools (main.sh, the tests, a lab without an image service).</summary>
internal static class DemoCommands
{
    public static Command Build() => new("demo", "Demonstration and test tools: walk a guest through every command, boot one with a config drive, serve images Glance-shaped, drive libvirt without the agent.")
    {
        Walk(), Spawn(), ImageServerCommand(), Lifecycle(),
    };

    private static Command Walk()
    {
        var socket = AgentSession.SocketOption();
        var image = new Option<string>("--image-id") { Description = "The image to spawn from.", HelpName = "ID", Required = true };
        var ready = new Option<string?>("--ready-line") { Description = "Wait for this line on the guest's serial console after each boot (a graceful stop needs the guest up).", HelpName = "TEXT" };
        var command = new Command("walk", "Spawns a guest through the agent and walks it through pause, unpause, suspend, resume, rescue, unrescue, resize, confirm resize, set admin password, snapshot, backup, rebuild, soft delete, restore, stop, start, hard reboot and delete, printing every state change the agent streams.")
        {
            image, ready, socket,
        };
        command.SetAction((parse, cancellationToken) => AgentSession.RunAsync(parse.GetValue(socket), agent =>
            AgentWalk.RunAsync(agent.SocketPath, parse.GetRequiredValue(image), parse.GetValue(ready), cancellationToken)));
        return command;
    }

    private static Command Spawn()
    {
        var socket = AgentSession.SocketOption();
        var image = new Option<string>("--image-id") { Description = "The image to spawn from.", HelpName = "ID", Required = true };
        var name = new Option<string>("--name") { Description = "The display name; the guest's hostname is made from it.", HelpName = "NAME", DefaultValueFactory = _ => "cloud-1" };
        var key = new Option<string?>("--public-key-file") { Description = "A public key for the key pair.", HelpName = "FILE" };
        var keyName = new Option<string>("--key-name") { Description = "The key pair's name.", HelpName = "NAME", DefaultValueFactory = _ => "default" };
        var userData = new Option<string?>("--user-data") { Description = "The user data, as bytes.", HelpName = "FILE" };
        var until = new Option<string?>("--until") { Description = "Print the console until a line containing this text appears (at most 15 minutes).", HelpName = "TEXT" };
        var vcpus = new Option<int>("--vcpus") { Description = "Virtual CPUs.", HelpName = "N", DefaultValueFactory = _ => 1 };
        var ram = new Option<int>("--ram-mib") { Description = "Memory in MiB.", HelpName = "MIB", DefaultValueFactory = _ => 512 };
        var root = new Option<int>("--root-gib") { Description = "Root disk in GiB.", HelpName = "GIB", DefaultValueFactory = _ => 2 };
        var command = new Command("spawn", "Boots an instance with a config drive (key pair, user data) and prints its serial console until the --until line appears; the instance is left running.")
        {
            image, name, key, keyName, userData, until, vcpus, ram, root, socket,
        };
        command.SetAction((parse, cancellationToken) => AgentSession.RunAsync(parse.GetValue(socket), agent => AgentSpawn.RunAsync(
            new AgentSpawn.Options(agent.SocketPath, parse.GetRequiredValue(image), parse.GetValue(name)!, parse.GetValue(key), parse.GetValue(keyName)!, parse.GetValue(userData), parse.GetValue(until), parse.GetValue(vcpus), parse.GetValue(ram), parse.GetValue(root)),
            cancellationToken)));
        return command;
    }

    private static Command ImageServerCommand()
    {
        var dir = new Option<string>("--dir") { Description = "The folder of images: *.qcow2, *.raw, *.iso, *.aki, *.ari, each with an optional FILE.json sidecar {\"id\": ..., \"properties\": {...}}.", HelpName = "DIR", Required = true };
        var listen = new Option<string>("--listen") { Description = "ADDRESS:PORT to serve on.", HelpName = "ADDRESS:PORT", DefaultValueFactory = _ => "127.0.0.1:9292" };
        var command = new Command("image-server", "Serves a folder of images as a Glance v2 image service (GET, list with property filters, and the POST / PUT / PATCH / DELETE snapshots need); prints each image's id, file and size, then serves until stopped.")
        {
            dir, listen,
        };
        command.SetAction((parse, cancellationToken) => ImageServer.RunAsync(parse.GetRequiredValue(dir), parse.GetRequiredValue(listen), cancellationToken));
        return command;
    }

    private static Command Lifecycle()
    {
        var image = new Option<string>("--image") { Description = "The qcow2 disk to boot (an overlay is made on it).", HelpName = "FILE", Required = true };
        var ready = new Option<string?>("--ready-line") { Description = "The console line that says the guest is up.", HelpName = "TEXT" };
        var uri = new Option<string>("--uri") { Description = "The libvirt connection.", HelpName = "URI", DefaultValueFactory = _ => "qemu:///system" };
        var virtType = new Option<string>("--virt-type") { Description = "The domain type.", HelpName = "TYPE", DefaultValueFactory = _ => "qemu" };
        virtType.AcceptOnlyFromAmong("qemu", "kvm");
        var workDir = new Option<string>("--work-dir") { Description = "Where the overlay and console log go.", HelpName = "DIR", DefaultValueFactory = _ => "/var/tmp/compute-agent-demo" };
        var command = new Command("lifecycle", "Walks a guest through its lifecycle with the bare libvirt wrapper, no agent: define, start, suspend, resume, managed save, restore, ACPI shutdown, start, destroy, undefine.")
        {
            image, ready, uri, virtType, workDir,
        };
        command.SetAction((parse, cancellationToken) => LifecycleWalk.RunAsync(
            new LifecycleWalk.Options(Path.GetFullPath(parse.GetRequiredValue(image)), parse.GetValue(ready), parse.GetRequiredValue(uri), parse.GetRequiredValue(virtType), Path.GetFullPath(parse.GetRequiredValue(workDir))),
            cancellationToken));
        return command;
    }
}
