# shellcheck shell=bash
# Sourced by .ci/run and .ci/check: `stage NAME` ends the stage before (noting its wall time)
# and starts NAME; on exit, even after a failure, the time of each stage is printed, so a slow
# CI run shows where its minutes went.
_stage_name="" _stage_start=$SECONDS _stage_times=()

stage() {
  if [[ -n "$_stage_name" ]]; then
    _stage_times+=("$(printf '%6d s  %s' $((SECONDS - _stage_start)) "$_stage_name")")
  fi
  _stage_name=$1 _stage_start=$SECONDS
  if [[ -n "$1" ]]; then echo "== $1"; fi
}

_stage_report() {
  stage ""
  echo "== wall time per stage ($1, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a))"
  printf '%s\n' "${_stage_times[@]}"
}
