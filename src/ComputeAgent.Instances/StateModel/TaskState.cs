namespace ComputeAgent.Instances.StateModel;

/// <summary>
/// An instance's task_state: None, or the step in flight (design.md §2). Values are contiguous
/// from 0 because the command table indexes arrays by them.
/// </summary>
public enum TaskState
{
    None = 0,
    Scheduling = 1,
    Networking = 2,
    BlockDeviceMapping = 3,
    Spawning = 4,
    Pausing = 5,
    Unpausing = 6,
    Suspending = 7,
    Resuming = 8,
    Rescuing = 9,
    Unrescuing = 10,
    UpdatingPassword = 11,
    Rebuilding = 12,
    RebuildSpawning = 13,
    SoftDeleting = 14,
    Restoring = 15,
    Deleting = 16,
    ImageSnapshot = 17,
    ImagePendingUpload = 18,
    ImageUploading = 19,
    ImageBackup = 20,
    PoweringOff = 21,
    PoweringOn = 22,
    Rebooting = 23,
    RebootingHard = 24,
    ResizePrep = 25,
    ResizeMigrating = 26,
    ResizeMigrated = 27,
    ResizeFinish = 28,
    ResizeReverting = 29,
    ResizeConfirming = 30,
}
