namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// An instance's vm_state (design.md §2). The seed's "Shutoff" and "Stopped" are one state, Stopped.
/// Values are contiguous from 0 because the command table indexes arrays by them.
/// </summary>
public enum VmState
{
    Building = 0,
    Active = 1,
    Paused = 2,
    Suspended = 3,
    Stopped = 4,
    Rescued = 5,
    Resized = 6,
    SoftDeleted = 7,
    Deleted = 8,
    Error = 9,
}
