namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// An instance's power_state as libvirt shows it (design.md §2). The numbers are Nova's
/// (nova/compute/power_state.py), so a controller speaking Nova's values reads them unchanged.
/// </summary>
public enum PowerState
{
    NoState = 0,
    Running = 1,
    Paused = 3,
    Shutdown = 4,
    Crashed = 6,
    Suspended = 7,
}
