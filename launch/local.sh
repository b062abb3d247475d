#!/usr/bin/env bash
# Run N cooperating `sfr-jax` processes on this machine (JAX multi-controller over a local coordinator).
#
#   launch/local.sh N [train args...]          e.g. launch/local.sh 2 --config configs/demo.py --workdir checkpoints/x
#
# Environment:
#   SFR_JAX_CMD          the command each process runs (default: "sfr-jax train")
#   DEVICES_PER_PROCESS  fake CPU devices per process when JAX runs on the CPU (default 4; unset JAX_PLATFORMS
#                        or set it to cuda/tpu to use real accelerators, then this is ignored)
#   LAUNCH_LOG_DIR       where process_<i>.log files go (default: launch_logs/<date-time>)
#   LAUNCH_TIMEOUT       seconds after which every process is stopped (default: none)
# Process 0's log is streamed to the terminal. If any process fails, the others are stopped and the script
# exits non-zero; Ctrl-C stops them all.
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then usage; exit 2; fi
num_processes=$1
shift
if ! [[ "$num_processes" =~ ^[1-9][0-9]*$ ]]; then
  echo "local.sh: N must be a positive integer, got '$num_processes'" >&2
  exit 2
fi

read -r -a command <<< "${SFR_JAX_CMD:-sfr-jax train}"
log_dir=${LAUNCH_LOG_DIR:-launch_logs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$log_dir"
# A free port, chosen by the kernel (the coordinator binds it a moment later).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
coordinator="127.0.0.1:$port"

pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap 'echo "local.sh: interrupted, stopping all processes" >&2; stop_all; exit 130' INT TERM

for ((i = 0; i < num_processes; i++)); do
  (
    export JAX_NUM_CPU_DEVICES=${DEVICES_PER_PROCESS:-4}
    export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-4}"
    extra=()
    if ((num_processes > 1)); then
      extra=(--coordinator "$coordinator" --num-processes "$num_processes" --process-id "$i")
    fi
    exec "${command[@]}" "$@" "${extra[@]}"
  ) > "$log_dir/process_$i.log" 2>&1 &
  pids+=($!)
done
echo "local.sh: $num_processes processes (coordinator $coordinator), logs in $log_dir" >&2

# Stream process 0's log. GNU tail's --pid ends the stream after that process, once its last lines are out
# (killing tail when the processes end could drop them); elsewhere tail is stopped at the end.
follow=()
if tail --pid=$$ -n 0 /dev/null 2>/dev/null; then follow=(--pid="${pids[0]}"); fi
tail -n +1 -F "${follow[@]}" "$log_dir/process_0.log" 2>/dev/null &
tail_pid=$!

deadline=0
if [[ -n "${LAUNCH_TIMEOUT:-}" ]]; then deadline=$((SECONDS + LAUNCH_TIMEOUT)); fi
status=0
declare -A finished=()
# Poll rather than block in `wait`, so that a failure of any process and the timeout are both seen promptly.
while ((${#finished[@]} < num_processes)); do
  for ((i = 0; i < num_processes; i++)); do
    [[ -n "${finished[$i]:-}" ]] && continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      code=0
      wait "${pids[$i]}" || code=$?
      finished[$i]=1
      if ((code != 0)); then
        echo "local.sh: process $i exited with status $code; stopping the others (see $log_dir/process_$i.log)" >&2
        status=$code
        stop_all
        break 2
      fi
    fi
  done
  if ((deadline > 0 && SECONDS > deadline)); then
    echo "local.sh: LAUNCH_TIMEOUT=${LAUNCH_TIMEOUT}s reached; stopping all processes" >&2
    status=124
    stop_all
    break
  fi
  sleep 0.5
done
if ((${#follow[@]})); then wait "$tail_pid" 2>/dev/null || true; else kill "$tail_pid" 2>/dev/null || true; fi
wait 2>/dev/null || true
exit "$status"
