using ComputeAgent.Instances.StateModel;
using static ComputeAgent.Instances.StateModel.InstanceCommand;
using static ComputeAgent.Instances.StateModel.TaskState;
using static ComputeAgent.Instances.StateModel.VmState;

namespace ComputeAgent.Instances.Tests.StateModel;

/// <summary>
/// The expectation: design.md §2's command table and rules, typed out by hand row by row from the
/// document. Deliberately shares nothing with CommandRules' table but the enums, so a slip in
/// either shows up as a disagreement.
/// </summary>
internal static class DesignTable
{
    /// <summary>One row: after(from, recorded) gives the vm_state after, where recorded is the vm_state the pause / resize began in.</summary>
    internal sealed record Row(InstanceCommand Command, string Name, VmState[] AcceptedFrom, TaskState[] TaskStates, Func<VmState, VmState, VmState> After);

    private static Func<VmState, VmState, VmState> Becomes(VmState state) => (_, _) => state;

    // | command | accepted from vm_state | task_state while it runs | vm_state after |
    public static readonly Row[] Rows =
    [
        // spawn: (new UUID; same UUID again = the existing instance, no second guest)
        new(Spawn, "spawn", [], [Scheduling, Networking, BlockDeviceMapping, Spawning], Becomes(Active)),
        new(Pause, "pause", [Active, Stopped, Rescued, Resized], [Pausing], Becomes(Paused)),
        // ACTIVE (RESCUED if it was paused from RESCUED)
        new(Unpause, "unpause", [Paused], [Unpausing], (_, pausedFrom) => pausedFrom == Rescued ? Rescued : Active),
        new(Suspend, "suspend", [Active, Stopped], [Suspending], Becomes(Suspended)),
        new(Resume, "resume", [Suspended], [Resuming], Becomes(Active)),
        new(Rescue, "rescue", [Active, Stopped, Resized], [Rescuing], Becomes(Rescued)),
        new(Unrescue, "unrescue", [Rescued], [Unrescuing], Becomes(Active)),
        new(SetAdminPassword, "set admin password", [Active], [UpdatingPassword], Becomes(Active)),
        new(Rebuild, "rebuild", [Active, Stopped, Resized], [Rebuilding, RebuildSpawning], Becomes(Active)),
        new(SoftDelete, "soft delete", [Active, Stopped, Error], [SoftDeleting], Becomes(SoftDeleted)),
        new(Restore, "restore", [SoftDeleted], [Restoring], Becomes(Active)),
        new(ForceDelete, "force delete", [SoftDeleted], [Deleting], Becomes(Deleted)),
        // every state but DELETED, any task
        new(Delete, "delete", [Building, Active, Paused, Suspended, Stopped, Rescued, Resized, SoftDeleted, Error], [Deleting], Becomes(Deleted)),
        // unchanged
        new(Backup, "backup", [Active, Stopped], [ImageBackup], (from, _) => from),
        new(Snapshot, "snapshot", [Active, Stopped], [ImageSnapshot, ImagePendingUpload, ImageUploading], (from, _) => from),
        new(Start, "start", [Stopped], [PoweringOn], Becomes(Active)),
        new(Stop, "stop", [Active, Stopped, Rescued, Resized], [PoweringOff], Becomes(Stopped)),
        // reboot (soft, hard): REBOOTING / REBOOTING_HARD; ACTIVE (RESCUED stays RESCUED)
        new(RebootSoft, "soft reboot", [Active, Stopped, Rescued, Resized], [Rebooting], (from, _) => from == Rescued ? Rescued : Active),
        new(RebootHard, "hard reboot", [Active, Stopped, Rescued, Resized], [RebootingHard], (from, _) => from == Rescued ? Rescued : Active),
        new(Resize, "resize", [Active, Stopped, Resized], [ResizePrep, ResizeMigrating, ResizeMigrated, ResizeFinish], Becomes(Resized)),
        // what it was before the resize (ACTIVE or STOPPED)
        new(ConfirmResize, "confirm resize", [Resized], [ResizeConfirming], (_, beforeResize) => beforeResize),
        new(RevertResize, "revert resize", [Resized], [ResizeReverting], (_, beforeResize) => beforeResize),
    ];

    /// <summary>"Commands the seed allows there (pause, rescue, rebuild, stop, reboot, resize) first confirm the pending resize."</summary>
    public static readonly InstanceCommand[] ConfirmPendingResizeFirst = [Pause, Rescue, Rebuild, Stop, RebootSoft, RebootHard, Resize];

    /// <summary>"A command is accepted only when task_state is none, except delete."</summary>
    public static readonly InstanceCommand[] AcceptedWithTaskInFlight = [Delete];

    public static Row For(InstanceCommand command) => Rows.Single(row => row.Command == command);

    public static bool Accepts(InstanceCommand command, VmState vmState, TaskState taskState) =>
        command != Spawn
        && For(command).AcceptedFrom.Contains(vmState)
        && (taskState == TaskState.None || AcceptedWithTaskInFlight.Contains(command));

    /// <summary>design.md's spelling of a state: SOFT_DELETED, BLOCK_DEVICE_MAPPING, none.</summary>
    public static string Spelled<TEnum>(TEnum value)
        where TEnum : struct, Enum
    {
        var name = value.ToString();
        if (name == "None")
        {
            return "none";
        }

        return string.Concat(name.Select((c, i) => i > 0 && char.IsUpper(c) ? "_" + c : c.ToString())).ToUpperInvariant();
    }
}
