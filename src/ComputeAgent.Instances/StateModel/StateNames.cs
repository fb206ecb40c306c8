namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// The names an operator reads (in refusals, logs, events): vm_state / task_state / power_state as
/// Nova and design.md spell them, commands as design.md's table names them. Literals, so naming a
/// state never allocates.
/// </summary>
public static class StateNames
{
    public static string ToDisplayName(this VmState vmState) => vmState switch
    {
        VmState.Building => "BUILDING",
        VmState.Active => "ACTIVE",
        VmState.Paused => "PAUSED",
        VmState.Suspended => "SUSPENDED",
        VmState.Stopped => "STOPPED",
        VmState.Rescued => "RESCUED",
        VmState.Resized => "RESIZED",
        VmState.SoftDeleted => "SOFT_DELETED",
        VmState.Deleted => "DELETED",
        VmState.Error => "ERROR",
        _ => throw new ArgumentOutOfRangeException(nameof(vmState), vmState, "not a vm_state"),
    };

    public static string ToDisplayName(this TaskState taskState) => taskState switch
    {
        TaskState.None => "none",
        TaskState.Scheduling => "SCHEDULING",
        TaskState.Networking => "NETWORKING",
        TaskState.BlockDeviceMapping => "BLOCK_DEVICE_MAPPING",
        TaskState.Spawning => "SPAWNING",
        TaskState.Pausing => "PAUSING",
        TaskState.Unpausing => "UNPAUSING",
        TaskState.Suspending => "SUSPENDING",
        TaskState.Resuming => "RESUMING",
        TaskState.Rescuing => "RESCUING",
        TaskState.Unrescuing => "UNRESCUING",
        TaskState.UpdatingPassword => "UPDATING_PASSWORD",
        TaskState.Rebuilding => "REBUILDING",
        TaskState.RebuildSpawning => "REBUILD_SPAWNING",
        TaskState.SoftDeleting => "SOFT_DELETING",
        TaskState.Restoring => "RESTORING",
        TaskState.Deleting => "DELETING",
        TaskState.ImageSnapshot => "IMAGE_SNAPSHOT",
        TaskState.ImagePendingUpload => "IMAGE_PENDING_UPLOAD",
        TaskState.ImageUploading => "IMAGE_UPLOADING",
        TaskState.ImageBackup => "IMAGE_BACKUP",
        TaskState.PoweringOff => "POWERING_OFF",
        TaskState.PoweringOn => "POWERING_ON",
        TaskState.Rebooting => "REBOOTING",
        TaskState.RebootingHard => "REBOOTING_HARD",
        TaskState.ResizePrep => "RESIZE_PREP",
        TaskState.ResizeMigrating => "RESIZE_MIGRATING",
        TaskState.ResizeMigrated => "RESIZE_MIGRATED",
        TaskState.ResizeFinish => "RESIZE_FINISH",
        TaskState.ResizeReverting => "RESIZE_REVERTING",
        TaskState.ResizeConfirming => "RESIZE_CONFIRMING",
        _ => throw new ArgumentOutOfRangeException(nameof(taskState), taskState, "not a task_state"),
    };

    public static string ToDisplayName(this PowerState powerState) => powerState switch
    {
        PowerState.NoState => "NOSTATE",
        PowerState.Running => "RUNNING",
        PowerState.Paused => "PAUSED",
        PowerState.Shutdown => "SHUTDOWN",
        PowerState.Crashed => "CRASHED",
        PowerState.Suspended => "SUSPENDED",
        _ => throw new ArgumentOutOfRangeException(nameof(powerState), powerState, "not a power_state"),
    };

    public static string ToDisplayName(this InstanceCommand command) => command switch
    {
        InstanceCommand.Spawn => "spawn",
        InstanceCommand.Pause => "pause",
        InstanceCommand.Unpause => "unpause",
        InstanceCommand.Suspend => "suspend",
        InstanceCommand.Resume => "resume",
        InstanceCommand.Rescue => "rescue",
        InstanceCommand.Unrescue => "unrescue",
        InstanceCommand.SetAdminPassword => "set admin password",
        InstanceCommand.Rebuild => "rebuild",
        InstanceCommand.SoftDelete => "soft delete",
        InstanceCommand.Restore => "restore",
        InstanceCommand.ForceDelete => "force delete",
        InstanceCommand.Delete => "delete",
        InstanceCommand.Backup => "backup",
        InstanceCommand.Snapshot => "snapshot",
        InstanceCommand.Start => "start",
        InstanceCommand.Stop => "stop",
        InstanceCommand.RebootSoft => "soft reboot",
        InstanceCommand.RebootHard => "hard reboot",
        InstanceCommand.Resize => "resize",
        InstanceCommand.ConfirmResize => "confirm resize",
        InstanceCommand.RevertResize => "revert resize",
        _ => throw new ArgumentOutOfRangeException(nameof(command), command, "not an instance command"),
    };
}
