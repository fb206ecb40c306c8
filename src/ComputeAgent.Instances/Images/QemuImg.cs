using System.Globalization;

namespace ComputeAgent.Instances.Images;

/// <summary>qemu-img, the one program the agent shells out to (design.md §1.5).</summary>
public static class QemuImg
{
    /// <summary>The program run when none is named: qemu-img from the PATH.</summary>
    public const string Program = "qemu-img";

    private const string Prlimit = "/usr/bin/prlimit";

    // Nova's limits for qemu-img on untrusted images: 1 GiB of address space, 30 s of CPU.
    private static readonly string[] InspectLimits = ["--as=1073741824", "--cpu=30", "--"];

    /// <summary>A qcow2 overlay on <paramref name="baseImage"/>, grown to <paramref name="sizeBytes"/> when given (never shrunk below the base).</summary>
    public static Task CreateOverlayAsync(string baseImage, string baseFormat, string overlay, long? sizeBytes, CancellationToken cancellationToken)
    {
        List<string> args = ["create", "-q", "-f", "qcow2", "-F", baseFormat, "-b", baseImage, overlay];
        if (sizeBytes is { } size)
        {
            args.Add(size.ToString(CultureInfo.InvariantCulture));
        }

        return RunAsync(args, cancellationToken);
    }

    /// <summary>Grows an image; qemu-img refuses to shrink without --shrink, which we never pass.</summary>
    public static Task ResizeAsync(string image, long sizeBytes, CancellationToken cancellationToken) =>
        RunAsync(["resize", "-q", image, sizeBytes.ToString(CultureInfo.InvariantCulture)], cancellationToken);

    /// <summary><c>qemu-img info --output=json</c> of an image, as text.</summary>
    public static Task<string> InfoJsonAsync(string image, CancellationToken cancellationToken) =>
        RunAsync(["info", "--force-share", "--output=json", image], cancellationToken);

    /// <summary>
    /// <c>qemu-img info --output=json</c> of an untrusted image with its format probed (so that a
    /// disguised image shows what it really is), under the limits Nova uses: a crafted image can
    /// make qemu-img eat memory or spin.
    /// </summary>
    public static Task<string> InspectJsonAsync(string image, CancellationToken cancellationToken, string program = Program) =>
        RunAsync(["info", "--output=json", image], cancellationToken, limited: true, program);

    /// <summary>
    /// <c>qemu-img check --output=json</c> of an untrusted image read as <paramref name="format"/>
    /// (never probed), under the same limits as <see cref="InspectJsonAsync"/>: qemu-img info reads
    /// only the header, so a truncated or damaged image passes it; check walks the metadata.
    /// </summary>
    internal static async Task<QemuImageCheck> CheckAsync(string image, string format, CancellationToken cancellationToken, string program = Program)
    {
        List<string> arguments = ["check", "--output=json", "-f", format, image];
        var (exitCode, output, error) = File.Exists(Prlimit)
            ? await HostTool.RunToExitAsync(Prlimit, [.. InspectLimits, program, .. arguments], "qemu-utils", cancellationToken).ConfigureAwait(false)
            : await HostTool.RunToExitAsync(program, arguments, "qemu-utils", cancellationToken).ConfigureAwait(false);
        return QemuImageCheck.From(exitCode, output, error);
    }

    /// <summary>Writes <paramref name="source"/> (read as <paramref name="sourceFormat"/>, never probed) to a new <paramref name="target"/> image.</summary>
    public static Task ConvertAsync(string source, string sourceFormat, string target, string targetFormat, CancellationToken cancellationToken, string program = Program) =>
        RunAsync(["convert", "-q", "-f", sourceFormat, "-O", targetFormat, source, target], cancellationToken, program: program);

    private static Task<string> RunAsync(List<string> arguments, CancellationToken cancellationToken, bool limited = false, string program = Program) =>
        limited && File.Exists(Prlimit)
            ? HostTool.RunAsync(Prlimit, [.. InspectLimits, program, .. arguments], "qemu-utils", cancellationToken, label: "qemu-img " + arguments[0])
            : HostTool.RunAsync(program, arguments, "qemu-utils", cancellationToken, label: "qemu-img " + arguments[0]);
}
