# Sourced by recipe run.sh scripts: turns `--some-name VALUE` arguments into
# `some_name=VALUE` for variables the script already defined, and leaves the rest in
# `$@` (positional arguments). An unknown option is an error that lists the known ones.
#   usage in run.sh:  stage=0; stop_stage=100; . "$(dirname "$0")/../parse_options.sh"

positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      sed -n '2,/^set /p' "$0" | sed -n 's/^# \{0,1\}//p'; exit 0 ;;
    --*)
      name="${1#--}"; name="${name//-/_}"
      if [ -z "${!name+defined}" ]; then
        echo "$0: unknown option $1" >&2
        sed -n '2,/^set /p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2
      fi
      if [ $# -lt 2 ]; then echo "$0: $1 needs a value" >&2; exit 2; fi
      printf -v "$name" '%s' "$2"; shift 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
set -- "${positional[@]+"${positional[@]}"}"
