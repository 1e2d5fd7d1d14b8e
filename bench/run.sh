#!/usr/bin/env bash
# Load benchmark of the two_factor hot path (a request with a verified 2FA
# session), side by side with plain reverse_proxy. See docs/performance.md.
#
# Usage (from anywhere in the repo):  bench/run.sh
#        with a Redis store holding a million sessions:  SEED=1000000 bench/run.sh
#
# Environment (defaults in brackets):
#   ROUNDS       alternating rounds over the three sites      [3]
#   DURATION     wrk duration of one site in one round        [10s]
#   WARMUP       wrk warm-up per site before the rounds       [2s]
#   THREADS      wrk threads (-t)                             [2]
#   CONNECTIONS  wrk connections (-c)                         [32]
#   LAT_DURATION wrk duration of the one-connection latency run
#                of one site in one round (-t1 -c1)           [5s]
#   KEEP_TMP     set to 1 to keep the temp dir (config, logs) [unset]
#   SEED         fill the Redis store with this many verified sessions
#                (bench/seed-redis) before the benchmark       [0]
#   SEED_PER_USER  sessions per seeded user                    [1]
#
# Everything runs on 127.0.0.1 (free ports picked at start) with a private
# redis-server on a unix socket in a temp dir; every process started here is
# stopped on exit. As root on Debian, missing wrk, redis-server and oathtool
# are installed with apt-get.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
LAT_DURATION=${LAT_DURATION:-5s}
SEED=${SEED:-0}
SEED_PER_USER=${SEED_PER_USER:-1}
[[ $SEED =~ ^[0-9]+$ && $SEED_PER_USER =~ ^[1-9][0-9]*$ ]] || { echo "bench: SEED and SEED_PER_USER must be numbers" >&2; exit 2; }

cd "$(dirname "$0")/.."
REPO=$(pwd)

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# --- 1. tools -------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v oathtool >/dev/null || missing+=(oathtool)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
	else
		die "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})"
	fi
fi
command -v go >/dev/null || die "go is not in PATH"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/caddy-2fa-bench.XXXXXX")
PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n ${KEEP_TMP:-} ]]; then
		log "kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building caddy"
go build -o "$TMP/caddy" ./cmd/caddy
CADDY=$TMP/caddy

# A loopback port nobody listens on (and that we did not hand out yet).
USED=" "
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 40000))
		[[ $USED == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			USED+="$p "
			echo "$p"
			return
		fi
	done
	die "no free port found"
}
UP_PORT=$(free_port)
PLAIN_PORT=$(free_port)
FILE_PORT=$(free_port)
REDIS_PORT=$(free_port)

# wait_for <seconds> <command...>: retry until the command succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

# --- 3. private redis ------------------------------------------------------
SOCK=$TMP/redis.sock
redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 \
	--save "" --appendonly no --dir "$TMP" --daemonize no \
	>"$TMP/redis.log" 2>&1 &
PIDS+=($!)
wait_for 10 test -S "$SOCK" || { cat "$TMP/redis.log" >&2; die "redis-server did not start"; }

# With SEED, the Redis site's realm gets SEED verified sessions of other
# users (enrolled, with a profile) before Caddy starts, through the real
# store: the hot path then runs against a full store. The output (bytes per
# session, read times) goes with the results.
if ((SEED > 0)); then
	log "seeding $SEED sessions ($SEED_PER_USER per user) into the redis store"
	go build -o "$TMP/seed-redis" ./bench/seed-redis
	"$TMP/seed-redis" -url "unix://$SOCK" -realm bench_redis -sessions "$SEED" -per-user "$SEED_PER_USER" \
		>"$TMP/seed.txt" || { cat "$TMP/seed.txt" >&2; die "seeding failed"; }
	cat "$TMP/seed.txt" >&2
fi

# --- 4. caddy config --------------------------------------------------------
USER_NAME=bench
USER_PASS=bench-password
HASH=$("$CADDY" hash-password --plaintext "$USER_PASS")
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
AUTH="Basic $(printf '%s:%s' "$USER_NAME" "$USER_PASS" | base64 | tr -d '\n')"

cat >"$TMP/Caddyfile" <<EOF
{
	admin off
	persist_config off
	auto_https off
}

# The upstream: the same for all three sites.
http://127.0.0.1:$UP_PORT {
	bind 127.0.0.1
	respond "ok" 200
}

# 1. plain reverse_proxy
http://127.0.0.1:$PLAIN_PORT {
	bind 127.0.0.1
	basic_auth {
		$USER_NAME $HASH
	}
	reverse_proxy 127.0.0.1:$UP_PORT
}

# 2. the gate with the file store
http://127.0.0.1:$FILE_PORT {
	bind 127.0.0.1
	basic_auth {
		$USER_NAME $HASH
	}
	two_factor {
		realm bench_file
		secret $SECRET
		store file $TMP/s.db
	}
	reverse_proxy 127.0.0.1:$UP_PORT
}

# 3. the gate with Redis
http://127.0.0.1:$REDIS_PORT {
	bind 127.0.0.1
	basic_auth {
		$USER_NAME $HASH
	}
	two_factor {
		realm bench_redis
		secret $SECRET
		store redis unix://$SOCK
	}
	reverse_proxy 127.0.0.1:$UP_PORT
}
EOF

export HOME=$TMP XDG_DATA_HOME=$TMP/data XDG_CONFIG_HOME=$TMP/config
"$CADDY" run --config "$TMP/Caddyfile" --adapter caddyfile >"$TMP/caddy.log" 2>&1 &
PIDS+=($!)
wait_for 30 curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$UP_PORT/" ||
	{ tail -n 30 "$TMP/caddy.log" >&2; die "caddy did not start"; }
for p in $PLAIN_PORT $FILE_PORT $REDIS_PORT; do
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" ||
		{ tail -n 30 "$TMP/caddy.log" >&2; die "caddy is not listening on $p"; }
done

# --- 5. a verified session through the real pages --------------------------
# enroll <port>: enrolls $USER_NAME on the gate at <port> and prints the
# session cookie as name=value (2fa_session, or 2fa_session_<realm> when the
# site sets a realm).
enroll() {
	local port=$1 base="http://127.0.0.1:$1" jar="$TMP/jar.$1" page secret csrf code cookie
	page=$(curl -fsS -m 10 -c "$jar" -b "$jar" -H "Authorization: $AUTH" "$base/.2fa/enroll") ||
		die "GET $base/.2fa/enroll failed"
	secret=$(grep -o 'secret=[A-Z2-7]*' <<<"$page" | head -n 1 | cut -d= -f2)
	csrf=$(grep -o 'name="csrf_token" value="[^"]*"' <<<"$page" | head -n 1 | sed 's/.*value="//; s/"$//')
	[[ -n $secret && -n $csrf ]] || die "no otpauth secret or csrf_token on $base/.2fa/enroll"
	code=$(oathtool --totp -b "$secret")
	curl -sS -m 10 -o "$TMP/enroll.$port.html" -c "$jar" -b "$jar" \
		-H "Authorization: $AUTH" -H "Origin: $base" -H "Sec-Fetch-Site: same-origin" \
		--data-urlencode "csrf_token=$csrf" --data-urlencode "code=$code" --data-urlencode "rd=/" \
		"$base/.2fa/enroll" || die "POST $base/.2fa/enroll failed"
	cookie=$(awk '$6 ~ /^2fa_session/ { v = $6 "=" $7 } END { print v }' "$jar")
	[[ -n $cookie ]] || die "no 2fa_session cookie after enrolling on $base (page: $TMP/enroll.$port.html; KEEP_TMP=1 keeps it)"
	echo "$cookie"
}

# check <port> <cookie header or empty>: the request wrk will send must reach
# the upstream.
check() {
	local out
	out=$(curl -sS -m 10 -w ' %{http_code}' -H "Authorization: $AUTH" ${2:+-H "Cookie: $2"} "http://127.0.0.1:$1/") || true
	[[ $out == "ok 200" ]] ||
		die "GET http://127.0.0.1:$1/ with the benchmark headers did not return the upstream's 200 \"ok\" (got: ${out:0:200})"
}

FILE_COOKIE=$(enroll "$FILE_PORT")
REDIS_COOKIE=$(enroll "$REDIS_PORT")
check "$PLAIN_PORT" ""
check "$FILE_PORT" "$FILE_COOKIE"
check "$REDIS_PORT" "$REDIS_COOKIE"
log "verified sessions obtained; all three sites answer 200 from the upstream"

# --- 6. load ----------------------------------------------------------------
SITES=(plain file redis)
declare -A PORT=([plain]=$PLAIN_PORT [file]=$FILE_PORT [redis]=$REDIS_PORT)
declare -A COOKIE=([plain]="" [file]=$FILE_COOKIE [redis]=$REDIS_COOKIE)

# run_wrk <site> <duration> <outfile> [<threads> <connections>]
run_wrk() {
	local site=$1 args=(-t"${4:-$THREADS}" -c"${5:-$CONNECTIONS}" -d"$2" --latency --timeout 5s -H "Authorization: $AUTH")
	[[ -n ${COOKIE[$site]} ]] && args+=(-H "Cookie: ${COOKIE[$site]}")
	wrk "${args[@]}" "http://127.0.0.1:${PORT[$site]}/" >"$3"
	if grep -q 'Non-2xx or 3xx\|Socket errors' "$3"; then
		cat "$3" >&2
		die "wrk saw errors on $site; the figures would be meaningless"
	fi
}

# to_us <wrk latency like 512.00us, 1.23ms, 1.01s>
to_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) m = 1; else if (v ~ /ms$/) m = 1000; else if (v ~ /s$/) m = 1000000; else m = 1
		printf "%.0f", n * m }'
}

# parse <wrk output>: prints "rps p50_us p99_us"
parse() {
	local rps p50 p99
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
	p50=$(awk '$1 == "50%" { print $2 }' "$1")
	p99=$(awk '$1 == "99%" { print $2 }' "$1")
	[[ -n $rps && -n $p50 && -n $p99 ]] || { cat "$1" >&2; die "could not parse wrk output"; }
	echo "$rps $(to_us "$p50") $(to_us "$p99")"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

log "warm-up: $WARMUP per site"
for s in "${SITES[@]}"; do run_wrk "$s" "$WARMUP" "$TMP/warmup.$s"; done

declare -A RPS P50 P99 L50 L99
for ((r = 1; r <= ROUNDS; r++)); do
	# Alternate the order so that no site always runs first or last.
	if ((r % 2)); then order=(plain file redis); else order=(redis file plain); fi
	for s in "${order[@]}"; do
		run_wrk "$s" "$DURATION" "$TMP/wrk.$r.$s"
		read -r rps p50 p99 < <(parse "$TMP/wrk.$r.$s")
		RPS[$s]+=" $rps"
		P50[$s]+=" $p50"
		P99[$s]+=" $p99"
		printf 'bench: round %d/%d %-5s %10.0f req/s  p50 %6d µs  p99 %6d µs  (-c%d)\n' "$r" "$ROUNDS" "$s" "$rps" "$p50" "$p99" "$CONNECTIONS" >&2
		# One connection: the latency of a request, without queueing.
		run_wrk "$s" "$LAT_DURATION" "$TMP/lat.$r.$s" 1 1
		read -r rps p50 p99 < <(parse "$TMP/lat.$r.$s")
		L50[$s]+=" $p50"
		L99[$s]+=" $p99"
		printf 'bench: round %d/%d %-5s %10.0f req/s  p50 %6d µs  p99 %6d µs  (-c1)\n' "$r" "$ROUNDS" "$s" "$rps" "$p50" "$p99" >&2
	done
done
for s in "${SITES[@]}"; do check "${PORT[$s]}" "${COOKIE[$s]}"; done

declare -A MRPS MP50 MP99 ML50 ML99
for s in "${SITES[@]}"; do
	MRPS[$s]=$(median <<<"${RPS[$s]}")
	MP50[$s]=$(median <<<"${P50[$s]}")
	MP99[$s]=$(median <<<"${P99[$s]}")
	ML50[$s]=$(median <<<"${L50[$s]}")
	ML99[$s]=$(median <<<"${L99[$s]}")
done

name() {
	case $1 in
	plain) echo "plain reverse_proxy" ;;
	file) echo "two_factor, file" ;;
	redis) echo "two_factor, redis" ;;
	esac
}
echo
echo "caddy-2fa load benchmark: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(go version | awk '{ print $3 }')"
echo "$ROUNDS alternating rounds, median of rounds; wrk and caddy share the machine's CPUs"
if ((SEED > 0)); then
	echo "redis store filled beforehand with $SEED sessions, $SEED_PER_USER per user (bench/seed-redis):"
	sed 's/^/  /' "$TMP/seed.txt"
fi
echo
echo "throughput: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
printf '%-22s %10s %9s %9s %12s\n' site req/s "p50 µs" "p99 µs" "ratio/plain"
for s in "${SITES[@]}"; do
	ratio=$(awk -v a="${MRPS[$s]}" -v b="${MRPS[plain]}" 'BEGIN { printf "%.3f", a / b }')
	printf '%-22s %10.0f %9.0f %9.0f %12s\n' "$(name "$s")" "${MRPS[$s]}" "${MP50[$s]}" "${MP99[$s]}" "$ratio"
done
echo
echo "latency: wrk -t1 -c1 -d$LAT_DURATION --latency (no queueing)"
printf '%-22s %9s %9s %14s\n' site "p50 µs" "p99 µs" "added p50 µs"
for s in "${SITES[@]}"; do
	added=$(awk -v a="${ML50[$s]}" -v b="${ML50[plain]}" 'BEGIN { printf "%+.0f", a - b }')
	printf '%-22s %9.0f %9.0f %14s\n' "$(name "$s")" "${ML50[$s]}" "${ML99[$s]}" "$added"
done
echo
echo "bars (SPEC §9): ratio >= 0.90 with either store, added p50 < 100 µs with redis; issue 7: 0.95 and 50 µs"
