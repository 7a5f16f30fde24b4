# Sourced by benchmarks/campaign.sh and benchmarks/finetune_nsmc.sh, with the script's arguments (RUN_DIR
# [--resume]): sets run, shared, data, ce and start (--init INIT for a new run, nothing for --resume), shifts
# RUN_DIR off the arguments, makes DATA/nsmc-test.txt (the held-out NSMC test reviews) when it is missing, and
# prints the start line of the run's log (time, commit, CPU).
run=${1:?usage: $0 RUN_DIR [--resume]}
shift
shared=${SHARED:-../shared}
data=${DATA:-$HOME/contextemb-runs/data}
ce=${CONTEXTEMB:-$PWD/.venv/bin/contextemb}
mkdir -p "$run" "$data"
if [ ! -f "$data/nsmc-test.txt" ]; then
    tail -n +2 "$shared/data/nsmc/ratings_test.tsv" | cut -f2 > "$data/nsmc-test.txt.tmp"
    mv "$data/nsmc-test.txt.tmp" "$data/nsmc-test.txt"
fi
start=(--init "${INIT:-ko-general}")
[ "${1:-}" = "--resume" ] && start=()
echo "$(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(grep -m1 'model name' /proc/cpuinfo)"
