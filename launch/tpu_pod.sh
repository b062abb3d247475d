#!/usr/bin/env bash
# SFR-Net training on a Cloud TPU VM slice (every worker runs the same `sfr-jax train`; JAX finds the pod itself).
#
#   launch/tpu_pod.sh --name sfr-v5e-32 --zone us-west4-a --accelerator v5litepod-32 --project my-proj \
#       --bucket gs://my-bucket [--version v2-alpha-tpuv5-lite] [--create] [--data gs://my-bucket/sewerml-tfrecords] \
#       -- --config configs/sewerml.py --config.data.dir=/data/sewerml
#
# Steps: (1) create the slice if --create is given and it does not exist; (2) copy this checkout to every worker
# and install it (pip install -e . with jax[tpu]); (3) copy the TFRecords from --data to each worker's local disk
# (optional; otherwise point the config at a gcsfuse mount or gs:// path); (4) run `sfr-jax train` on all workers
# with the workdir on GCS (gs://BUCKET/sfr-jax/NAME), streaming worker 0's log; other workers log to
# /tmp/sfr-jax.log on their VM. Re-running the script resumes from the workdir.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

name="" zone="" accelerator="" project="" bucket="" version="tpu-ubuntu2204-base" create=0 data=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) name=$2; shift 2 ;;
    --zone) zone=$2; shift 2 ;;
    --accelerator) accelerator=$2; shift 2 ;;
    --project) project=$2; shift 2 ;;
    --bucket) bucket=${2%/}; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --data) data=${2%/}; shift 2 ;;
    --create) create=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) echo "tpu_pod.sh: unknown option '$1' (train arguments go after --)" >&2; exit 2 ;;
  esac
done
for required in name zone project bucket; do
  if [[ -z "${!required}" ]]; then echo "tpu_pod.sh: --$required is required" >&2; usage >&2; exit 2; fi
done
if [[ "$bucket" != gs://* ]]; then echo "tpu_pod.sh: --bucket must be a gs:// URL, got '$bucket'" >&2; exit 2; fi

tpu=(gcloud compute tpus tpu-vm --project "$project" --zone "$zone")
workdir="$bucket/sfr-jax/$name"

if ((create)) && ! "${tpu[@]}" describe "$name" > /dev/null 2>&1; then
  if [[ -z "$accelerator" ]]; then echo "tpu_pod.sh: --create needs --accelerator" >&2; exit 2; fi
  echo "tpu_pod.sh: creating $name ($accelerator) in $zone"
  "${tpu[@]}" create "$name" --accelerator-type "$accelerator" --version "$version"
fi

repo_root=$(cd "$(dirname "$0")/.." && pwd)
archive=$(mktemp --suffix=.tar.gz)
trap 'rm -f "$archive"' EXIT
tar -C "$repo_root" --exclude=.venv --exclude=.git --exclude='checkpoints/*' -czf "$archive" .

echo "tpu_pod.sh: installing sfr_jax on every worker of $name"
"${tpu[@]}" scp "$archive" "$name:/tmp/sfr_jax.tar.gz" --worker=all
"${tpu[@]}" ssh "$name" --worker=all --command \
  "mkdir -p ~/sfr_jax && tar -xzf /tmp/sfr_jax.tar.gz -C ~/sfr_jax && cd ~/sfr_jax && \
   python3 -m pip install -q -r requirements.txt && python3 -m pip install -q 'jax[tpu]' && \
   python3 -m pip install -q --no-deps open_clip_torch==3.3.0 && python3 -m pip install -q --no-deps -e ."

if [[ -n "$data" ]]; then
  echo "tpu_pod.sh: copying $data to every worker's /data"
  "${tpu[@]}" ssh "$name" --worker=all --command "mkdir -p /data && gcloud storage cp -r '$data' /data/"
fi

# Quote the train arguments for the remote shell.
train_args=$(printf ' %q' "$@")
echo "tpu_pod.sh: training on all workers, workdir $workdir (worker 0's log follows)"
"${tpu[@]}" ssh "$name" --worker=all --command \
  "cd ~/sfr_jax && if [ \"\$(curl -s -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number)\" = 0 ]; then \
     sfr-jax train --workdir '$workdir'$train_args 2>&1 | tee /tmp/sfr-jax.log; \
   else sfr-jax train --workdir '$workdir'$train_args > /tmp/sfr-jax.log 2>&1; fi"
