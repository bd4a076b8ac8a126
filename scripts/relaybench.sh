# shellcheck shell=bash
# relaybench.sh: the machinery shared by scripts/bench-relay and
# scripts/bench-outbound, sourced after the caller has set BENCH_NAME, N,
# SESSIONS, SIZE_BYTES, WARMUP, TIMEOUT and KEEP:
#   tools (Postfix's smtp-source and smtp-sink), a scratch directory removed
#   on exit, free loopback ports, an smtp-sink that counts messages, CPU and
#   memory figures of the relay under test, run_load/measure (throughput as
#   N / seconds from the first message sent until the sink has counted N), the
#   mailgate build, and path_postfix (a stock Postfix relay on a scratch
#   configuration).
# run_load starts the clients with start_sources LABEL PORT COUNT, which a
# caller may redefine (after sourcing) to send other messages; it must set
# SRC_PIDS to the clients' PIDs, whose output goes to $WORK/source-LABEL*.out.

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

# ---------------------------------------------------------------- locate repo
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
[[ -f $ROOT/go.mod && -d $ROOT/cmd/mailgate ]] || die "cannot find the repository root from $SCRIPT_DIR"

# ---------------------------------------------------------------- tools
install_postfix() {
	log "smtp-source not found: installing postfix (no configuration)"
	[[ $(id -u) -eq 0 ]] || die "postfix is missing and installing it needs root"
	printf '%s\n' "postfix postfix/main_mailer_type select No configuration" \
		"postfix postfix/mailname string localhost" | debconf-set-selections
	local inst=(apt-get install -y --no-install-recommends postfix)
	if ! DEBIAN_FRONTEND=noninteractive "${inst[@]}" >&2; then
		log "install failed; running apt-get update and retrying"
		apt-get update >&2
		DEBIAN_FRONTEND=noninteractive "${inst[@]}" >&2
	fi
}
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin"
command -v smtp-source >/dev/null 2>&1 || install_postfix
for t in smtp-source smtp-sink postfix postconf go; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found"
done
[[ $(id -u) -eq 0 ]] || die "must run as root (Postfix and smtp-sink -u postfix need it)"

# ---------------------------------------------------------------- scratch dir
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")
# Postfix daemons run as the postfix user and must traverse into their queue.
chmod 755 "$WORK"
mkfifo "$WORK/nap.fifo"

SINK_PID=""
MG_PID=""
VGW_PID=""
PF_CONF=""
PF_MASTER_PID=""

stop_pid() { # PID: TERM, wait up to 10 s, then KILL
	local pid=$1 i
	[[ -n $pid ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

stop_postfix() {
	[[ -n $PF_CONF ]] || return 0
	local i
	postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
	for ((i = 0; i < 100; i++)); do
		if [[ -z $PF_MASTER_PID ]] || ! kill -0 "$PF_MASTER_PID" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if [[ -n $PF_MASTER_PID ]] && kill -0 "$PF_MASTER_PID" 2>/dev/null; then
		postfix -c "$PF_CONF" abort >/dev/null 2>&1 || true
		stop_pid "$PF_MASTER_PID"
	fi
	PF_CONF=""
	PF_MASTER_PID=""
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local rc=$?
	set +e
	stop_pid "$MG_PID"
	stop_pid "$VGW_PID"
	stop_postfix
	stop_pid "$SINK_PID"
	if [[ $KEEP == 1 || $rc -ne 0 ]]; then
		log "scratch directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# listening PORT: is something listening on 127.0.0.1:PORT?
if command -v ss >/dev/null 2>&1; then
	listening() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }
else
	listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
fi

declare -A USED_PORTS=()
# Ports are drawn below the kernel's ephemeral range (32768-60999 by
# default): a port in it can become the local port of an outgoing
# connection between the check and the server's bind.
EPHEMERAL_LOW=32768
read -r EPHEMERAL_LOW _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
PORT_LOW=10000
((EPHEMERAL_LOW - PORT_LOW >= 2000)) || PORT_LOW=1024
free_port() { # sets FREE_PORT to a loopback TCP port nobody listens on
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((PORT_LOW + RANDOM % (EPHEMERAL_LOW - PORT_LOW)))
		[[ -z ${USED_PORTS[$p]:-} ]] || continue
		if ! listening "$p"; then
			USED_PORTS[$p]=1
			FREE_PORT=$p
			return 0
		fi
	done
	die "no free port found"
}

wait_port() { # PORT PID WHAT: wait until 127.0.0.1:PORT listens (PID must stay alive)
	local port=$1 pid=$2 what=$3 i
	for ((i = 0; i < 300; i++)); do
		listening "$port" && return 0
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			die "$what exited before listening on $port"
		fi
		sleep 0.1
	done
	die "$what is not listening on 127.0.0.1:$port after 30 s"
}

# nap SECONDS: sleep without forking (a fork per poll costs CPU on a small,
# busy machine and would slow down the paths being measured).
nap() { read -r -t "$1" <>"$WORK/nap.fifo" || true; }

# smtp-sink -c rewrites one status line ("sess=.. quit=.. mesg=N") with CRs;
# sink_count sets SINK_N to the last mesg= value (one fork: tail).
SINK_N=0
sink_count() {
	local t
	t=$(tail -c 300 "$WORK/sink.out" 2>/dev/null) || t=""
	t=${t//$'\r'/ }
	if [[ $t =~ .*mesg=([0-9]+) ]]; then
		SINK_N=${BASH_REMATCH[1]}
	else
		SINK_N=0
	fi
}

start_sink() {
	free_port
	SINK_PORT=$FREE_PORT
	: >"$WORK/sink.out"
	# 1024: connection cap well above any session/concurrency setting used here.
	smtp-sink -u postfix -c "127.0.0.1:$SINK_PORT" 1024 >"$WORK/sink.out" 2>"$WORK/sink.err" &
	SINK_PID=$!
	wait_port "$SINK_PORT" "$SINK_PID" smtp-sink
}

stop_sink() {
	stop_pid "$SINK_PID"
	wait "$SINK_PID" 2>/dev/null || true
	SINK_PID=""
}

# proc_kb FILE KEY: value in kB of "KEY: N kB" in a /proc file, 0 if absent.
# Builtins only: Postfix runs dozens of processes.
proc_kb() {
	local k v _
	while read -r k v _; do
		if [[ $k == "$2:" ]]; then
			echo "$v"
			return 0
		fi
	done 2>/dev/null <"$1"
	echo 0
}
vmhwm_kb() { proc_kb "/proc/$1/status" VmHWM; }    # peak RSS
pss_kb() { proc_kb "/proc/$1/smaps_rollup" Pss; } # current proportional set size

# cpu_ticks PID...: sets CPU_TICKS to the sum of utime+stime+cutime+cstime
# (clock ticks) of the processes; cutime/cstime hold the children a process
# has reaped (Postfix's master reaps its short-lived daemons).
CPU_TICKS=0
cpu_ticks() {
	local sum=0 p line f
	for p; do
		read -r line 2>/dev/null <"/proc/$p/stat" || continue
		read -ra f <<<"${line##*) }"
		sum=$((sum + f[11] + f[12] + f[13] + f[14]))
	done
	CPU_TICKS=$sum
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# server_cpu PATH: CPU_TICKS of the relay under test (0 for direct).
server_cpu() {
	case $1 in
	mailgate) cpu_ticks "$MG_PID" ;;
	postfix)
		# shellcheck disable=SC2046 # one PID per word
		cpu_ticks "$PF_MASTER_PID" $(pgrep -P "$PF_MASTER_PID" || true)
		;;
	*) CPU_TICKS=0 ;;
	esac
}

# start_sources LABEL PORT COUNT: the default client, one smtp-source sending
# COUNT generated messages of SIZE_BYTES over SESSIONS sessions. Sets SRC_PIDS,
# and SINK_EXTRA to the number of messages the relay adds to the COUNT sent
# (0 here; a relay that sends notices of its own delivers more).
SRC_PIDS=()
SINK_EXTRA=0
start_sources() {
	SINK_EXTRA=0
	smtp-source -4 -s "$SESSIONS" -m "$3" -l "$SIZE_BYTES" \
		-f sender@example.org -t user@bench.test -M bench-client.test \
		"127.0.0.1:$2" >"$WORK/source-$1.out" 2>&1 &
	SRC_PIDS=($!)
}

# run_load LABEL PORT COUNT: run the clients (start_sources), wait for COUNT
# more messages at the sink, set ELAPSED (seconds). Returns non-zero on failure
# or timeout. The sink is not polled while a client runs (it cannot have all
# messages before the clients are done), only afterwards, every 20 ms.
run_load() {
	local label=$1 port=$2 count=$3 base target start end pid src_rc deadline alive f
	sink_count
	base=$SINK_N
	deadline=$((SECONDS + TIMEOUT))
	start=$EPOCHREALTIME
	start_sources "$label" "$port" "$count"
	target=$((base + count + SINK_EXTRA))
	while :; do
		alive=0
		for pid in "${SRC_PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		((alive)) || break
		if ((SECONDS >= deadline)); then
			for pid in "${SRC_PIDS[@]}"; do
				kill "$pid" 2>/dev/null || true
				wait "$pid" 2>/dev/null || true
			done
			sink_count
			log "$label: clients still sending after ${TIMEOUT}s ($((SINK_N - base)) of $((target - base)) at the sink)"
			return 1
		fi
		nap 0.02
	done
	for pid in "${SRC_PIDS[@]}"; do
		wait "$pid" && src_rc=0 || src_rc=$?
		if ((src_rc != 0)); then
			log "$label: a client exited with $src_rc:"
			for f in "$WORK/source-$label"*.out; do
				tail -n 5 "$f" | sed 's/^/    /' >&2
			done
			return 1
		fi
	done
	while :; do
		sink_count
		if ((SINK_N >= target)); then
			end=$EPOCHREALTIME
			break
		fi
		if ((SECONDS >= deadline)); then
			log "$label: only $((SINK_N - base)) of $((target - base)) messages at the sink after ${TIMEOUT}s"
			return 1
		fi
		nap 0.02
	done
	ELAPSED=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
	if ((SINK_N != target)); then
		log "$label: sink counted $((SINK_N - base)) messages, expected $((target - base))"
	fi
	return 0
}

# measure PATH PORT: warm-up then measured run; sets RATE[PATH], SECS[PATH].
declare -A RATE=() SECS=() PEAK=() CPUMS=()
FAILED=0
measure() {
	local path=$1 port=$2
	if ((WARMUP > 0)); then
		log "$path: warm-up, $WARMUP messages"
		run_load "$path-warmup" "$port" "$WARMUP" || {
			FAILED=1
			return 1
		}
	fi
	log "$path: measuring, $N messages of $SIZE_KB KB over $SESSIONS sessions"
	local cpu0
	server_cpu "$path"
	cpu0=$CPU_TICKS
	if ! run_load "$path" "$port" "$N"; then
		FAILED=1
		return 1
	fi
	server_cpu "$path"
	if [[ $path != direct ]]; then
		# CPU time per message is less sensitive than msgs/s to other work
		# competing for the machine's cores.
		CPUMS[$path]=$(awk -v t=$((CPU_TICKS - cpu0)) -v hz="$CLK_TCK" -v n="$N" \
			'BEGIN {printf "%.2f", t * 1000 / hz / n}')
	fi
	SECS[$path]=$ELAPSED
	RATE[$path]=$(awk -v n="$N" -v s="$ELAPSED" 'BEGIN {printf "%.1f", (s > 0 ? n / s : 0)}')
	log "$path: $N messages in ${ELAPSED}s = ${RATE[$path]} msgs/s"
}

# ---------------------------------------------------------------- build
log "building mailgate"
(cd "$ROOT" && go build -o "$WORK/mailgate" ./cmd/mailgate) || die "go build failed"
MG="$WORK/mailgate"

# ---------------------------------------------------------------- b. postfix
path_postfix() {
	start_sink
	local pf="$WORK/postfix" smtpd_port
	free_port
	smtpd_port=$FREE_PORT
	mkdir -p "$pf/etc" "$pf/queue" "$pf/data"
	chown postfix "$pf/data"
	cat >"$pf/etc/main.cf" <<EOF
# Scratch relay for $BENCH_NAME; stock settings except what a loopback relay needs.
compatibility_level = 3.6
config_directory = $pf/etc
queue_directory = $pf/queue
data_directory = $pf/data
maillog_file_prefixes = $pf
maillog_file = $pf/postfix.log
myhostname = postfix-bench.test
mydomain = postfix-bench.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
smtp_dns_support_level = disabled
disable_dns_lookups = yes
smtpd_peername_lookup = no
smtpd_tls_security_level = none
smtp_tls_security_level = none
alias_maps =
alias_database =
biff = no
EOF
	# Only the services a relay uses; no chroot (the scratch queue has no
	# chroot tree). smtpd listens on its own port.
	cat >"$pf/etc/master.cf" <<EOF
127.0.0.1:$smtpd_port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	PF_CONF="$pf/etc"
	if ! postfix -c "$PF_CONF" start >"$WORK/postfix-start.out" 2>&1; then
		# postfix(1) logs its fatal errors to syslog unless stderr is a tty.
		sed 's/^/    /' "$WORK/postfix-start.out" >&2
		tail -n 5 "$pf/postfix.log" 2>/dev/null | sed 's/^/    /' >&2
		if command -v script >/dev/null 2>&1; then
			script -qc "postfix -c '$PF_CONF' check" /dev/null 2>&1 | sed 's/^/    /' >&2 || true
		fi
		stop_postfix
		stop_sink
		FAILED=1
		log "postfix: could not start"
		return 0
	fi
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $pf/queue/pid/master.pid ]] && break
		sleep 0.1
	done
	PF_MASTER_PID=$(tr -dc '0-9' <"$pf/queue/pid/master.pid" 2>/dev/null || true)
	wait_port "$smtpd_port" "$PF_MASTER_PID" postfix
	if measure postfix "$smtpd_port"; then
		# Sum of the peak RSS of master and every child alive now (smtpd,
		# cleanup, qmgr, smtp, ...). Shared pages are counted once per process.
		local sum=0 pss=0 n=0 c
		for c in "$PF_MASTER_PID" $(pgrep -P "$PF_MASTER_PID" || true); do
			sum=$((sum + $(vmhwm_kb "$c")))
			pss=$((pss + $(pss_kb "$c")))
			n=$((n + 1))
		done
		PEAK[postfix]=$sum
		PF_PSS=$pss
		PF_NPROC=$n
	fi
	stop_postfix
	stop_sink
}

