using ComputeAgent.Cli;

return args is ["lifecycle", .. var rest]
    ? await LifecycleWalk.RunAsync(LifecycleWalk.Options.Parse(rest), CancellationToken.None)
    : Usage();

static int Usage()
{
    Console.Error.WriteLine("""
        usage: compute-agent-cli lifecycle --image DISK.qcow2 [--ready-line TEXT] [--uri qemu:///system] [--virt-type qemu|kvm] [--work-dir DIR]

          Boots a real guest from DISK.qcow2 (through a qcow2 overlay, the image is never written)
          and walks it through define, start, suspend, resume, managed save, restore, ACPI shutdown,
          start, destroy and undefine, printing libvirt's state and event after every step.
        """);
    return 2;
}
