# shellcheck shell=bash
# rounds.sh: run a benchmark script ROUNDS times and summarise its last line.
#
# Sourced at the top of a benchmark whose last line is
#   NAME msgs/s: K1=V1 K2=V2 ratio=R p99-accept-ms=P
# With ROUNDS above 1, run_rounds runs the script again ROUNDS times with
# ROUNDS=1, one after the other (each run measures both of its paths side
# by side, so a round's ratio compares paths under the same conditions),
# shows each run's output, prints each round's last line, and ends with the
# same line made of the medians of each field over the rounds (the ratio is
# the median of the rounds' ratios, not the ratio of the medians). On a
# shared machine one run's figures move by tens of percent with other work;
# the median of a few rounds moves far less. The exit status is the first
# failed round's, else 0.

# run_rounds SCRIPT PREFIX: returns only when ROUNDS is 1 (the caller then
# runs once); otherwise runs the rounds and exits.
run_rounds() {
	local script=$1 prefix=$2
	local rounds=${ROUNDS:-1}
	if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
		echo "$(basename "$script"): ROUNDS must be a positive integer (got '$rounds')" >&2
		exit 2
	fi
	((rounds > 1)) || return 0
	local out status=0 rc r
	out=$(mktemp "${TMPDIR:-/tmp}/rounds.XXXXXX")
	local -a lines=()
	for ((r = 1; r <= rounds; r++)); do
		echo "== round $r of $rounds" >&2
		rc=0
		ROUNDS=1 "$script" | tee "$out" || rc=$?
		((rc == 0 || status != 0)) || status=$rc
		lines+=("$(grep "^$prefix msgs/s: " "$out" | tail -n 1 || true)")
	done
	rm -f "$out"
	echo
	for ((r = 0; r < rounds; r++)); do
		echo "round $((r + 1)): ${lines[r]:-(no result)}"
	done
	printf '%s\n' "${lines[@]}" | awk -v prefix="$prefix" -v rounds="$rounds" '
		function median(key,   n, i, j, t, v) {
			n = cnt[key]
			for (i = 1; i <= n; i++) v[i] = val[key, i]
			for (i = 2; i <= n; i++) {
				t = v[i]
				for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]
				v[j + 1] = t
			}
			if (n % 2) return v[(n + 1) / 2]
			return (v[n / 2] + v[n / 2 + 1]) / 2
		}
		index($0, prefix " msgs/s: ") == 1 {
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (!(kv[1] in seen)) { seen[kv[1]] = 1; order[++nk] = kv[1] }
				val[kv[1], ++cnt[kv[1]]] = kv[2] + 0
			}
		}
		END {
			if (nk == 0) { print prefix " msgs/s: no round gave a result"; exit }
			line = prefix " msgs/s:"
			for (i = 1; i <= nk; i++) {
				k = order[i]
				f = (k == "ratio") ? "%.2f" : "%.1f"
				line = line sprintf(" %s=" f, k, median(k))
			}
			printf "median of %d rounds (%d with a result):\n%s\n", rounds, cnt[order[1]], line
		}'
	exit "$status"
}
