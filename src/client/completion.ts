// Shell completion of connection names for `hoop connect NAME` and `hoop exec NAME`. oclif's
// autocomplete completes commands and flags from a static cache; connection names depend on the
// gateway and the caller's identity, so they are asked for at completion time
// (`hoop connections --names`), and every other word is left to oclif's function.

/** A bash snippet to source after oclif's own setup (`hoop autocomplete bash`). */
export function bashConnectionCompletion(bin: string): string {
  return `# hoop: complete connection names after \`${bin} connect\` and \`${bin} exec\` (asks the gateway).
_hoop_complete_with_connections() {
  if [[ \${COMP_CWORD} -eq 2 && ( "\${COMP_WORDS[1]}" == connect || "\${COMP_WORDS[1]}" == exec ) && "\${COMP_WORDS[2]}" != -* ]]; then
    local IFS=$'\\n'
    COMPREPLY=($(compgen -W "$(${bin} connections --names 2>/dev/null)" -- "\${COMP_WORDS[2]}"))
    return 0
  fi
  if declare -F _${bin}_autocomplete >/dev/null; then _${bin}_autocomplete; fi
}
complete -o default -F _hoop_complete_with_connections ${bin}
`
}
