#!/usr/bin/env bash
# CI: a real Slurm run. Installs slurm-wlm and munge from the distribution, starts a
# one-node cluster on localhost, submits teacher-array.sbatch as an array of 3 tasks
# over a small input with the default model, merges the shards, and compares the
# result with a single-machine run byte for byte.
#
#   deploy/slurm/ci-check.sh TEACHER_BINARY
#
# Skipped, with a message, only when the packages cannot be installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
teacher=$(realpath "${1:?usage: ci-check.sh TEACHER_BINARY}")
work=$(mktemp -d /tmp/teacher-slurm.XXXXXX)
export TEACHER_HOME=${TEACHER_HOME:?TEACHER_HOME must name the model cache}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if ! { apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q slurm-wlm munge >/dev/null 2>&1; }; }; then
        echo "ci: SKIPPED the Slurm run: slurm-wlm and munge could not be installed from the distribution"
        exit 0
    fi
fi

cleanup() { "$here/local-cluster.sh" stop "$work/cluster" || true; }
trap cleanup EXIT
"$here/local-cluster.sh" start "$work/cluster"

python3 - "$work/in.jsonl" <<'PY'
import json, sys
topics = ["tides", "photosynthesis", "binary search", "the French Revolution",
          "compound interest", "volcanoes"]
with open(sys.argv[1], "w") as f:
    for i, t in enumerate(topics):
        f.write(json.dumps({"id": f"q{i}", "instruction": f"Explain {t} in two sentences."}) + "\n")
PY
args=(respond --input "$work/in.jsonl" --max-tokens 48 --seed 11)

echo "ci: single-machine run"
RAYON_NUM_THREADS=2 "$teacher" "${args[@]}" --out "$work/single.jsonl" --batch 6

echo "ci: sbatch --array=0-2 teacher-array.sbatch"
TEACHER="$teacher" sbatch --wait --array=0-2 --cpus-per-task=1 \
    --output="$work/slurm-%A_%a.out" "$here/teacher-array.sbatch" "$work/shards" "${args[@]}" --batch 2 || {
    cat "$work"/slurm-*.out >&2 || true
    exit 1
}
cat "$work"/slurm-*.out
"$teacher" merge "$work/shards/shard-*.jsonl" --out "$work/merged.jsonl"
if cmp "$work/single.jsonl" "$work/merged.jsonl"; then
    echo "ci: Slurm array of 3 shards, merged, equals the single run ($(wc -l <"$work/merged.jsonl") records)"
else
    echo "ci: the merged Slurm run differs from the single run" >&2
    exit 1
fi
rm -rf "$work/shards" "$work/in.jsonl"
