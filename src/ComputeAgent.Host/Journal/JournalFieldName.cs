using System.Text;

namespace ComputeAgent.Host.Journal;

/// <summary>
/// A structured property's name as a journal field: upper snake case (InstanceUuid →
/// INSTANCE_UUID, VMState → VM_STATE), only A–Z, 0–9 and _, starting with a letter (journald
/// drops other names; a leading _ is reserved for fields journald itself sets), at most 64 bytes.
/// </summary>
public static class JournalFieldName
{
    private const int MaxLength = 64;

    public static string From(string property)
    {
        ArgumentNullException.ThrowIfNull(property);
        var name = new StringBuilder(property.Length + 8);
        for (var i = 0; i < property.Length; i++)
        {
            var c = property[i];
            if (char.IsAsciiLetterUpper(c))
            {
                var previous = i > 0 ? property[i - 1] : '\0';
                var next = i + 1 < property.Length ? property[i + 1] : '\0';
                var wordStart = char.IsAsciiLetterLower(previous) || char.IsAsciiDigit(previous)
                    || (char.IsAsciiLetterUpper(previous) && char.IsAsciiLetterLower(next));
                if (wordStart && name.Length > 0 && name[^1] != '_')
                {
                    name.Append('_');
                }

                name.Append(c);
            }
            else if (char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c))
            {
                name.Append(char.ToUpperInvariant(c));
            }
            else if (name.Length > 0 && name[^1] != '_')
            {
                name.Append('_');
            }
        }

        while (name.Length > 0 && name[^1] == '_')
        {
            name.Length--;
        }

        if (name.Length == 0 || !char.IsAsciiLetterUpper(name[0]))
        {
            name.Insert(0, "F_");
        }

        return name.Length > MaxLength ? name.ToString(0, MaxLength) : name.ToString();
    }
}
