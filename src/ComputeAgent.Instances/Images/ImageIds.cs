using System.Text.RegularExpressions;

namespace ComputeAgent.Instances.Images;

/// <summary>
/// The image ids the agent accepts. Glance's are UUIDs; the id becomes a URL segment and a file
/// name in the cache, so nothing that could climb out of either ("..", "/", a dot-file) gets in.
/// </summary>
internal static partial class ImageIds
{
    public static void Check(string imageId)
    {
        ArgumentNullException.ThrowIfNull(imageId);
        if (!Pattern().IsMatch(imageId))
        {
            throw new ArgumentException($"image id '{(imageId.Length <= 80 ? imageId : imageId[..80] + "…")}' is not a Glance image id (letters, digits, '-' and '_', at most 128)", nameof(imageId));
        }
    }

    public static bool IsValid(string imageId) => Pattern().IsMatch(imageId);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
