#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# End-to-end test of send.sh against a real SMTP server on 127.0.0.1
# (aiosmtpd with a Maildir mailbox), with a test identity and a throwaway
# cache and git config:
#
#   - a dry run sends nothing;
#   - v1 sent with SEND=1 arrives complete, with the test identity in place
#     of the placeholder, and 'git am' of the received mails onto
#     $BASE_TAG gives exactly the tree of the series;
#   - v2 is [PATCH v2 n/m] and its cover letter replies to v1's;
#   - a bad V and a missing identity are refused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

harness_lock
need_stage test-send
# Debian's python3 has aiosmtpd; a python3 from pyenv or a venv may not.
py=/usr/bin/python3
$py -c 'import aiosmtpd' 2>/dev/null || die "$py cannot import aiosmtpd; install python3-aiosmtpd"
git -C "$TREE" rev-parse --git-dir >/dev/null 2>&1 || die "no tree at $TREE; run 'make tree' first"
n=$(git -C "$TREE" rev-list --count "$BASE_TAG..HEAD") ||
	die "$TREE has no '$BASE_TAG' tag; recreate it with 'make tree FORCE=1'"
[ "$n" -gt 0 ] || die "$TREE has no commits on top of $BASE_TAG"

t0=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-send.XXXXXX")
server=
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
on_exit cleanup

# A throwaway identity, mail config and sent-mail record.
name="Send Test"
email="send-test@example.org"
export GIT_CONFIG_GLOBAL=$tmp/gitconfig GIT_CONFIG_NOSYSTEM=1
git config --global user.name "$name"
git config --global user.email "$email"
export CACHE=$tmp/cache STATE=$tmp/state
mkdir -p "$CACHE" "$STATE"

port=$($py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mbox=$tmp/maildir
msg "starting aiosmtpd on 127.0.0.1:$port"
$py -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$mbox" \
	>"$tmp/smtpd.log" 2>&1 &
server=$!
for _ in $(seq 50); do
	$py -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null && break
	kill -0 "$server" 2>/dev/null || die "aiosmtpd exited: $(cat "$tmp/smtpd.log")"
	sleep 0.2
done
kill -0 "$server" 2>/dev/null || die "aiosmtpd did not start: $(cat "$tmp/smtpd.log")"
export SMTP_SERVER=127.0.0.1 SMTP_PORT=${TEST_SEND_SMTP_PORT:-$port}
[ -z "${TEST_SEND_SMTP_PORT:-}" ] || warn "sending to port $SMTP_PORT instead of the test server's ($port): TEST_SEND_SMTP_PORT"

count() { find "$mbox/new" "$mbox/cur" -type f 2>/dev/null | wc -l; }
fails=0
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then
		msg "ok: $what"
	else
		warn "FAILED: $what"
		fails=$((fails + 1))
	fi
}

# refused WANT VAR=VALUE...: send.sh fails, saying WANT.
refused() {
	local want=$1 out
	shift
	if out=$(env "$@" "$TOP/scripts/send.sh" 2>&1); then
		return 1
	fi
	grep -qF -- "$want" <<<"$out"
}
# all_have LINE FILE...: every FILE has the (header) line LINE.
all_have() {
	local line=$1 f
	shift
	for f; do
		grep -qixF -- "$line" "$f" || return 1
	done
}
# none_has EMAIL NAME FILE...: no FILE mentions EMAIL or NAME.
none_has() {
	! grep -qF -e "$1" -e "$2" "${@:3}"
}
# The files of the mails of one version (VERSION-TAG: "" or v2, ...),
# "index<TAB>file" in patch order, 0 being the cover letter.
files_of() { # files_of VERSION-TAG
	$py - "$mbox" "$1" <<'EOF'
import email, email.header, os, re, sys
box, tag = sys.argv[1:]
rows = []
for sub in ('new', 'cur'):
    for f in os.listdir(os.path.join(box, sub)):
        path = os.path.join(box, sub, f)
        with open(path, 'rb') as fh:
            m = email.message_from_binary_file(fh)
        subj = str(email.header.make_header(email.header.decode_header(m['Subject'] or '')))
        g = re.match(r'\[PATCH( v\d+)? (\d+)/(\d+)\]', ' '.join(subj.split()))
        if g and (g.group(1) or '').strip() == tag:
            rows.append((int(g.group(2)), path))
for i, path in sorted(rows):
    print(f'{i}\t{path}')
EOF
}

# --- refusals ---------------------------------------------------------------
check "V=abc is refused" refused "is not a version number" V=abc
check "V=0 is refused" refused "is not a version number" V=0
check "a missing identity is refused" refused "user.name/user.email are not set" GIT_CONFIG_GLOBAL=/dev/null
check "v2 without a sent v1 is refused" refused "no record of v1" V=2

# --- dry run ----------------------------------------------------------------
msg "dry run of v1"
"$TOP/scripts/send.sh" >"$tmp/dry.log" 2>&1 || { cat "$tmp/dry.log" >&2; die "the dry run failed"; }
sleep 1
check "the dry run sends nothing ($(count) mails received)" test "$(count)" -eq 0

# --- v1 ---------------------------------------------------------------------
msg "sending v1 to 127.0.0.1:$port"
SEND=1 "$TOP/scripts/send.sh" >"$tmp/v1.log" 2>&1 || { cat "$tmp/v1.log" >&2; die "sending v1 failed"; }
check "v1: $((n + 1)) mails received" test "$(count)" -eq $((n + 1))
files_of "" >"$tmp/v1.list"
mapfile -t v1 < <(cut -f2 "$tmp/v1.list")
check "v1: mails 0..$n in order" test "$(cut -f1 "$tmp/v1.list" | paste -sd,)" = "$(seq -s, 0 "$n")"
check "v1: no placeholder identity left" none_has "$PH_EMAIL" "$PH_NAME" "${v1[@]}"
check "v1: From: is the test identity" all_have "From: $name <$email>" "${v1[@]}"
check "v1: patches signed off by the test identity" all_have "Signed-off-by: $name <$email>" "${v1[@]:1}"
v1_cover=$(grep -m1 -i '^Message-ID:' "${v1[0]}" | cut -d' ' -f2)
[ -n "$v1_cover" ] || die "v1's cover letter arrived without a Message-ID"
check "v1: patches reply to the cover letter" all_have "In-Reply-To: $v1_cover" "${v1[@]:1}"
check "v1: the cover letter's Message-ID is recorded" \
	test "$(cat "$STATE/sent/$SERIES/$(git -C "$TREE" symbolic-ref --short HEAD)/v1/cover-msgid")" = "$v1_cover"

# git am what arrived, in patch order, onto the base in a throwaway clone.
msg "git am of the received v1 onto $BASE_TAG"
am=$tmp/am
git clone -q --shared --no-checkout "$(git -C "$TREE" rev-parse --path-format=absolute --git-common-dir)" "$am"
# Only the directories the series touches are checked out.
mapfile -t dirs < <(git -C "$TREE" diff --name-only "$BASE_TAG" HEAD | xargs -n1 dirname | grep -vx . | sort -u)
git -C "$am" sparse-checkout set --cone "${dirs[@]}"
git -C "$am" checkout -q --detach "$(git -C "$TREE" rev-parse "$BASE_TAG^{commit}")"
git -C "$am" -c user.name="$name" -c user.email="$email" am -q "${v1[@]:1}" ||
	die "git am of the received v1 failed in $am"
want=$(git -C "$TREE" rev-parse 'HEAD^{tree}')
got=$(git -C "$am" rev-parse 'HEAD^{tree}')
check "git am of v1 gives the series' tree ($got)" test "$got" = "$want"
check "git am of v1 gives $n commits by the test identity" test \
	"$(git -C "$am" log --format='%an <%ae>' "$BASE_TAG..HEAD" | sort -u)" = "$name <$email>"
check "resending v1 is refused" refused "was already sent" SEND=1

# --- v2 ---------------------------------------------------------------------
msg "sending v2"
V=2 SEND=1 "$TOP/scripts/send.sh" >"$tmp/v2.log" 2>&1 || { cat "$tmp/v2.log" >&2; die "sending v2 failed"; }
mapfile -t v2 < <(files_of v2 | cut -f2)
check "v2: $((n + 1)) mails [PATCH v2 k/$n]" test ${#v2[@]} -eq $((n + 1))
check "v2: the cover letter replies to v1's ($v1_cover)" \
	all_have "In-Reply-To: $v1_cover" "${v2[0]}"

msg "test-send took $(($(date +%s) - t0)) s"
[ "$fails" -eq 0 ] || die "$fails send checks failed; see the FAILED lines above"
msg "PASS: send.sh end to end over SMTP on 127.0.0.1:$port"
