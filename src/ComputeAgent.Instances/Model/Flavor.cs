namespace ComputeAgent.Instances.Model;

/// <summary>
/// A Nova flavor as the controller sends it. <see cref="ExtraSpecs"/> stays the string dictionary
/// Nova has; <see cref="FlavorExtraSpecs.Parse"/> turns it into typed options.
/// </summary>
public sealed record Flavor(
    string Name,
    int Vcpus,
    int RamMiB,
    int RootGiB,
    int EphemeralGiB = 0,
    int SwapGiB = 0,
    IReadOnlyDictionary<string, string>? ExtraSpecs = null)
{
    // Bounds of what one libvirt/QEMU guest can be given, not of what a host has.
    public const int MaxVcpus = 1024;
    public const int MaxRamMiB = 16 * 1024 * 1024;
    public const int MaxDiskGiB = 1024 * 1024;

    /// <summary>Refuses a flavor that no guest could have (names, sizes); extra specs are checked when parsed.</summary>
    public void Validate()
    {
        SpecValues.CheckText("flavor.name", Name);
        if (Vcpus is < 1 or > MaxVcpus)
        {
            throw new InvalidInstanceSpecException("flavor.vcpus", Vcpus.ToString(System.Globalization.CultureInfo.InvariantCulture), $"1 to {MaxVcpus}");
        }

        if (RamMiB is < 16 or > MaxRamMiB)
        {
            throw new InvalidInstanceSpecException("flavor.ram", RamMiB.ToString(System.Globalization.CultureInfo.InvariantCulture), $"16 to {MaxRamMiB} MiB");
        }

        CheckDisk("flavor.root_gb", RootGiB);
        CheckDisk("flavor.ephemeral_gb", EphemeralGiB);
        CheckDisk("flavor.swap_gb", SwapGiB);
    }

    private static void CheckDisk(string field, int value)
    {
        if (value is < 0 or > MaxDiskGiB)
        {
            throw new InvalidInstanceSpecException(field, value.ToString(System.Globalization.CultureInfo.InvariantCulture), $"0 to {MaxDiskGiB} GiB");
        }
    }
}
