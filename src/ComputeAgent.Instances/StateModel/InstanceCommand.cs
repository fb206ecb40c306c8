namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// The commands of design.md §2's table, in the table's row order (the order in which
/// <see cref="CommandRules.AllowedCommands"/> lists them). Contiguous from 0: the table indexes by them.
/// </summary>
public enum InstanceCommand
{
    Spawn = 0,
    Pause = 1,
    Unpause = 2,
    Suspend = 3,
    Resume = 4,
    Rescue = 5,
    Unrescue = 6,
    SetAdminPassword = 7,
    Rebuild = 8,
    SoftDelete = 9,
    Restore = 10,
    ForceDelete = 11,
    Delete = 12,
    Backup = 13,
    Snapshot = 14,
    Start = 15,
    Stop = 16,
    RebootSoft = 17,
    RebootHard = 18,
    Resize = 19,
    ConfirmResize = 20,
    RevertResize = 21,
}
