#!/usr/bin/env bash
# CI: a real Slurm run. Installs slurm-wlm and munge from the distribution, starts a
# one-node cluster on localhost, submits teacher-array.sbatch as an array of 3 tasks
# over a small input with the default model, merges the shards, and compares the
# result with a single-machine run byte for byte.
#
#   deploy/slurm/ci-check.sh TEACHER_BINARY
#
# Fails when the packages cannot be installed; TEACHER_SKIP_SLURM=1 skips it on purpose
# (say why where you set it). Every `sbatch --wait` is bounded by SLURM_WAIT_S seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
teacher=$(realpath "${1:?usage: ci-check.sh TEACHER_BINARY}")
work=$(mktemp -d /tmp/teacher-slurm.XXXXXX)
export TEACHER_HOME=${TEACHER_HOME:?TEACHER_HOME must name the model cache}

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if ! { apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q slurm-wlm munge >/dev/null 2>&1; }; }; then
        if [ "${TEACHER_SKIP_SLURM:-}" = 1 ]; then
            echo "ci: SKIPPED the Slurm run (TEACHER_SKIP_SLURM=1): slurm-wlm and munge could not be installed"
            exit 0
        fi
        echo "ci: slurm-wlm and munge could not be installed from the distribution; set TEACHER_SKIP_SLURM=1 to skip the Slurm check on purpose" >&2
        exit 1
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

# sbatch --wait, bounded: a job that never leaves the queue fails the check.
submit() {
    TEACHER="$teacher" timeout "${SLURM_WAIT_S:-300}" sbatch --wait --cpus-per-task=1 \
        --output="$work/slurm-%A_%a.out" "$@" "$here/teacher-array.sbatch" "$work/shards" "${args[@]}" --batch 2 || {
        echo "ci: sbatch $* failed or did not finish within ${SLURM_WAIT_S:-300} s" >&2
        cat "$work"/slurm-*.out >&2 || true
        scancel --user="$(id -un)" 2>/dev/null || true
        exit 1
    }
}
merged_equals_single() {
    rm -f "$work/merged.jsonl" "$work/merged.jsonl.manifest.json"
    "$teacher" merge "$work/shards/shard-*.jsonl" --out "$work/merged.jsonl"
    if cmp "$work/single.jsonl" "$work/merged.jsonl"; then
        echo "ci: $1, merged, equals the single run ($(wc -l <"$work/merged.jsonl") records)"
    else
        echo "ci: $1, merged, differs from the single run" >&2
        exit 1
    fi
}

echo "ci: sbatch --array=0-2 teacher-array.sbatch"
submit --array=0-2
cat "$work"/slurm-*.out
merged_equals_single "Slurm array of 3 shards"

echo "ci: a one-task array without TEACHER_SHARDS is refused (its N is unknown)"
if TEACHER="$teacher" timeout "${SLURM_WAIT_S:-300}" sbatch --wait --array=1 --cpus-per-task=1 \
    --output="$work/refused-%A_%a.out" "$here/teacher-array.sbatch" "$work/other" "${args[@]}"; then
    echo "ci: a one-task array without TEACHER_SHARDS ran" >&2
    exit 1
fi
grep -q "TEACHER_SHARDS=N" "$work"/refused-*.out || { cat "$work"/refused-*.out >&2; exit 1; }

echo "ci: shard 1 lost, re-run alone: sbatch --array=1 --export=ALL,TEACHER_SHARDS=3"
rm "$work/shards/shard-1.jsonl" "$work/shards/shard-1.jsonl.manifest.json"
submit --array=1 --export=ALL,TEACHER_SHARDS=3
merged_equals_single "shards 0 and 2 with shard 1 re-run as a one-task array"
rm -rf "$work/shards" "$work/in.jsonl"
