using System.CommandLine;
using System.CommandLine.Completions;
using System.Globalization;
using System.Text;

namespace ComputeAgent.Cli;

/// <summary>
/// `completion bash`: a bash completion script written from the command tree itself, so it knows
/// every command, option and fixed value the binary does; instance UUIDs come from the agent
/// (`list --uuids`) when it answers. The .deb installs it in /usr/share/bash-completion/completions.
/// </summary>
internal static class BashCompletion
{
    public static Command Build(RootCommand root)
    {
        var command = new Command("completion", "Print a shell completion script.");
        var bash = new Command("bash", "Print the bash completion script (the package installs it; by hand: source <(compute-agent-cli completion bash)).");
        bash.SetAction(_ => Console.Out.Write(Script(root)));
        command.Add(bash);
        return command;
    }

    public static string Script(RootCommand root)
    {
        var subcommands = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var options = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var values = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var takesUuid = new SortedSet<string>(StringComparer.Ordinal);
        // Bash refuses an empty key, so the root's path is "@" and a subcommand's "@ demo walk".
        Walk(root, "@", []);

        void Walk(Command command, string path, IReadOnlyList<Option> inherited)
        {
            var all = inherited.Concat(command.Options).Where(o => !o.Hidden).Distinct().ToList();
            subcommands[path] = string.Join(' ', command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name));
            options[path] = string.Join(' ', all.SelectMany(Names));
            foreach (var option in all.Where(o => o.ValueType != typeof(bool)))
            {
                // A fixed set of values is offered as words; a path-like value as file names; any other value as nothing.
                var words = option.GetCompletions(CompletionContext.Empty).Select(c => c.Label).ToList();
                var kind = words.Count > 0 ? string.Join(' ', words) : option.HelpName is "PATH" or "FILE" or "DIR" ? "@files" : "@any";
                foreach (var name in Names(option))
                {
                    values[$"{path} {name}"] = kind;
                }
            }

            if (command.Arguments.Any(a => a.Name == "UUID"))
            {
                takesUuid.Add(path);
            }

            foreach (var sub in command.Subcommands)
            {
                Walk(sub, $"{path} {sub.Name}", [.. all.Where(o => o.Recursive)]);
            }
        }

        var script = new StringBuilder();
        script.Append("""
            # bash completion for compute-agent-cli, written by `compute-agent-cli completion bash`
            # from the command tree: commands, options, fixed values, files; instance UUIDs from the
            # agent itself (compute-agent-cli list --uuids) when it answers.
            _compute_agent_cli() {
              local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}

            """);
        Table("subcommands", subcommands);
        Table("options", options);
        Table("values", values);
        Table("uuids", takesUuid.ToDictionary(p => p, _ => "1"));
        script.Append("""
              # The command path: the words naming subcommands, skipping each option's value.
              local path=@ socket=() i w
              for ((i = 1; i < COMP_CWORD; i++)); do
                w=${COMP_WORDS[i]}
                if [[ -n ${values["$path $w"]:-} ]]; then
                  [[ $w == --socket ]] && socket=(--socket "${COMP_WORDS[i + 1]}")
                  ((i++))
                elif [[ " ${subcommands[$path]:-} " == *" $w "* ]]; then
                  path="$path $w"
                fi
              done
              local value=${values["$path $prev"]:-}
              case $value in
                "") ;;
                @files) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
                @any) COMPREPLY=(); return ;;
                *) mapfile -t COMPREPLY < <(compgen -W "$value" -- "$cur"); return ;;
              esac
              if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "${options[$path]:-}" -- "$cur")
                return
              fi
              local words=${subcommands[$path]:-}
              if [[ -n ${uuids[$path]:-} ]]; then
                words+=" $("${COMP_WORDS[0]}" list --uuids "${socket[@]}" 2>/dev/null)"
              fi
              mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
            }
            complete -F _compute_agent_cli compute-agent-cli

            """);
        return script.ToString();

        void Table(string name, IEnumerable<KeyValuePair<string, string>> entries)
        {
            script.Append(CultureInfo.InvariantCulture, $"  local -A {name}=(\n");
            foreach (var (key, value) in entries)
            {
                script.Append(CultureInfo.InvariantCulture, $"    [{Quote(key)}]={Quote(value)}\n");
            }

            script.Append("  )\n");
        }
    }

    // --help, -h; not the Windows spellings (/h, /?).
    private static IEnumerable<string> Names(Option option) => option.Aliases.Prepend(option.Name).Where(n => n.StartsWith('-')).Distinct();

    private static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
