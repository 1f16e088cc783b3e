# sma runbook helpers for Bash, loaded through BASH_ENV before the runbook runs.
# Records go as JSON lines to the descriptor whose number is in SMA_RECORD_FD (the job's
# stdout pipe, so they keep their place among printed lines), each after the byte 0x1E and
# SMA_RECORD_TAG (see smaworker/channel.py).

# The job's resource limits first (SMA_RLIMITS: "name=soft:hard ...", sizes in KiB as
# ulimit counts them): set here, before the runbook runs, they hold for it and everything
# it starts, and it cannot raise them again. Soft before hard: the worker never asks for
# more than it has, so lowering the soft limit first always keeps soft <= hard.
for __sma_l in ${SMA_RLIMITS:-}; do
  case ${__sma_l%%=*} in
    core) __sma_f=-c ;; data) __sma_f=-d ;; nproc) __sma_f=-u ;;
    nofile) __sma_f=-n ;; cpu) __sma_f=-t ;; fsize) __sma_f=-f ;; *) continue ;;
  esac
  __sma_v=${__sma_l#*=}
  if ! ulimit -S "$__sma_f" "${__sma_v%%:*}" || ! ulimit -H "$__sma_f" "${__sma_v#*:}"; then
    printf 'sma: could not set the job limit %s\n' "$__sma_l" >&2
    exit 125
  fi
done
unset __sma_l __sma_f __sma_v

__sma_json() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

__sma_record() {
  local stream=$1; shift
  local text="$*"
  if [ -n "${SMA_RECORD_FD:-}" ]; then
    printf '\036%s{"stream":"%s","text":%s}\n' "${SMA_RECORD_TAG:-}" "$stream" \
      "$(__sma_json "$text")" >&"$SMA_RECORD_FD"
  else
    printf '[%s] %s\n' "$stream" "$text" >&2
  fi
}

write_warning() { __sma_record Warning "$@"; }
write_error()   { __sma_record Error "$@"; }
write_verbose() { [ "${SMA_LOG_VERBOSE:-0}" = 1 ] && __sma_record Verbose "$@"; return 0; }
write_debug()   { [ "${SMA_LOG_DEBUG:-0}" = 1 ] && __sma_record Debug "$@"; return 0; }

# write_progress ACTIVITY [STATUS [PERCENT]]
write_progress() {
  [ "${SMA_LOG_PROGRESS:-0}" = 1 ] || return 0
  local activity=$1 status=${2:-} percent=${3:-null} text
  text=$activity
  [ -n "$status" ] && text="$activity: $status"
  [ "$percent" != null ] && text="$text ($percent%)"
  if [ -n "${SMA_RECORD_FD:-}" ]; then
    printf '\036%s{"stream":"Progress","text":%s,"value":{"activity":%s,"status":%s,"percent":%s}}\n' \
      "${SMA_RECORD_TAG:-}" "$(__sma_json "$text")" "$(__sma_json "$activity")" \
      "$(__sma_json "$status")" "$percent" >&"$SMA_RECORD_FD"
  else
    printf '[Progress] %s\n' "$text" >&2
  fi
}

# write_output_json JSON: a typed output object given as JSON text
write_output_json() {
  if [ -n "${SMA_RECORD_FD:-}" ]; then
    printf '\036%s{"stream":"Output","text":%s,"value":%s}\n' "${SMA_RECORD_TAG:-}" \
      "$(__sma_json "$1")" "$1" >&"$SMA_RECORD_FD"
  else
    printf '%s\n' "$1"
  fi
}

# checkpoint JSON: save the job's checkpoint (any JSON value); a resumed job reads it back
checkpoint() {
  local data=${1:-null}
  if [ -n "${SMA_RECORD_FD:-}" ]; then
    printf '\036%s{"type":"checkpoint","data":%s}\n' "${SMA_RECORD_TAG:-}" "$data" \
      >&"$SMA_RECORD_FD"
  fi
}

# last_checkpoint: print the data of the last checkpoint (nothing on a first run)
last_checkpoint() {
  if [ -n "${SMA_CHECKPOINT_FILE:-}" ] && [ -f "$SMA_CHECKPOINT_FILE" ]; then
    cat "$SMA_CHECKPOINT_FILE"
  fi
}

# Assets, through the job's token (a secret fetched is masked in the job's output):
#   get_automation_variable NAME            the value (strings as they are, else JSON)
#   set_automation_variable NAME JSON       set it
#   get_automation_credential NAME [username|password]
#   get_automation_connection NAME [FIELD]
#   get_automation_certificate NAME         base64
#   start_runbook NAME [JSON] [--wait] [-- ARG ...]
#                                           a child job (JSON: named parameters; after --:
#                                           positional arguments): its id, or (--wait) its
#                                           output
#   sma_id_token AUDIENCE [LIFETIME]        the job's identity token (a JWT whose aud is
#                                           AUDIENCE), e.g. for
#                                           aws sts assume-role-with-web-identity
__sma_assets() { "${SMA_PYTHON:-python3}" -I "$SMA_RUNTIME/sma_assets_cli.py" "$@"; }
get_automation_variable()    { __sma_assets variable "$@"; }
set_automation_variable()    { __sma_assets set-variable "$@"; }
get_automation_credential()  { __sma_assets credential "$@"; }
get_automation_connection()  { __sma_assets connection "$@"; }
get_automation_certificate() { __sma_assets certificate "$@"; }
start_runbook()              { __sma_assets start "$@"; }
sma_id_token() {
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    printf 'usage: sma_id_token AUDIENCE [LIFETIME]\n' >&2
    return 2
  fi
  __sma_assets id-token "$@"
}

# Parameters too large for the environment and the arguments (the kernel caps one string at
# 128 KiB) come as files in $SMA_PARAMETER_DIR: read each into its variable (not exported:
# the runbook's commands would hit the same cap) and into the argument after its --NAME (the
# pairs come after the SMA_ARGUMENT_COUNT positional arguments, which stay as they are).
# Once only: a bash the runbook starts sources this file again, with its own arguments.
if [ -n "${SMA_PARAMETER_FILES:-}" ]; then
  for __sma_n in $SMA_PARAMETER_FILES; do
    IFS= read -r -d '' "$__sma_n" < "$SMA_PARAMETER_DIR/$__sma_n"
  done
  __sma_args=("${@:1:${SMA_ARGUMENT_COUNT:-0}}")
  shift "${SMA_ARGUMENT_COUNT:-0}"
  while [ $# -ge 2 ]; do
    __sma_n=${1#--}
    case " $SMA_PARAMETER_FILES " in
      *" $__sma_n "*) __sma_args+=("$1" "${!__sma_n}") ;;
      *) __sma_args+=("$1" "$2") ;;
    esac
    shift 2
  done
  set -- "${__sma_args[@]}" "$@"
  unset SMA_PARAMETER_FILES SMA_ARGUMENT_COUNT __sma_n __sma_args
fi
