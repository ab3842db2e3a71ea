#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# End-to-end test of send.sh against a real SMTP server on 127.0.0.1
# (aiosmtpd with a Maildir mailbox), with a test identity and a throwaway
# cache and git config, for the series SERIES= says.
#
# SERIES=stable (the default): the request to the stable team
# (stable-request.sh, stable-kernel-rules.rst option 2):
#   - a bad V or SEND and a missing identity are refused; no SIGNOFF is
#     needed;
#   - without SEND it is a dry run: nothing arrives, and the one mail is
#     printed;
#   - SEND=1: exactly one mail arrives, To: stable@vger.kernel.org only,
#     Cc: the author of 45692aa4a7ce, the maintainers and lists of the
#     KVM/x86 and KVM/hyper-v MAINTAINERS sections (read here from the
#     tree's MAINTAINERS, not from send.sh) and kvm@vger.kernel.org; the
#     subject names the commit (id and subject), the body names the
#     commit, the commit it fixes and the target trees; no diff line and
#     no Signed-off-by anywhere in the mail; From: the test identity;
#   - a resend of v1 is refused; v2 replies to v1.
#
# SERIES=mainline:
#   - without SIGNOFF the send is refused, saying how to sign off; a bad
#     SIGNOFF or V and a missing identity are refused too;
#   - a dry run sends nothing;
#   - v1 sent with SIGNOFF=1 SEND=1 arrives complete, with the test
#     identity in place of the placeholder (author and Signed-off-by), and
#     'git am' of the received mails onto $BASE_TAG gives exactly the tree
#     of the series; To: the lists and Cc: the people get_maintainer.pl
#     names, and no stable list;
#   - 'git rebase --signoff' alone leaves the placeholder and is refused;
#     the command the refusal prints signs a copy of the tree off, and v2
#     is sent from it without SIGNOFF: [PATCH v2 n/m], signed off by the
#     test identity, its cover letter replying to v1's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

harness_lock
need_stage test-send
# Debian's python3 has aiosmtpd; a python3 from pyenv or a venv may not.
py=/usr/bin/python3
$py -c 'import aiosmtpd' 2>/dev/null || die "$py cannot import aiosmtpd; install python3-aiosmtpd"
git -C "$TREE" rev-parse --git-dir >/dev/null 2>&1 || die "no tree at $TREE; run 'make tree' first"
n_all=$(git -C "$TREE" rev-list --count "$BASE_TAG..HEAD") ||
	die "$TREE has no '$BASE_TAG' tag; recreate it with 'make tree FORCE=1'"
[ "$n_all" -gt 0 ] || die "$TREE has no commits on top of $BASE_TAG"
n=$n_all
sent_tip=HEAD

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
# The choice to sign off is made below, case by case.
unset SIGNOFF SEND V IN_REPLY_TO FORCE

# What the headers must be, written out here rather than taken from send.sh.
STABLE_TO=stable@vger.kernel.org
UPSTREAM=45692aa4a7ce
UPSTREAM_SUBJECT="x86/hyper-v: Validate entire GVA range for non-canonical addresses during PV TLB flush"
FIXES=fa787ac07b3c
UPSTREAM_AUTHOR=manuel.andreas@tum.de
STABLE_SECTIONS=("KVM X86 HYPER-V (KVM/hyper-v)" "KERNEL VIRTUAL MACHINE FOR X86 (KVM/x86)")

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
        g = re.match(r'\[PATCH(?: [0-9.]+y)?( v\d+)? (\d+)/(\d+)\]', ' '.join(subj.split()))
        if g and (g.group(1) or '').strip() == tag:
            rows.append((int(g.group(2)), path))
for i, path in sorted(rows):
    print(f'{i}\t{path}')
EOF
}

# mail_field FILE to|cc|subject|log: the addresses of To: or Cc: (lower
# case, one a line), the unfolded Subject:, or the first line of the
# change log (after any in-body From:/Date:).  Each mail is read once.
mail_field() {
	local f=$1 fields=$tmp/fields/${1//\//_}
	if [ ! -f "$fields" ]; then
		mkdir -p "$tmp/fields"
		$py - "$f" >"$fields" <<'EOF'
import email, email.header, email.utils, re, sys
with open(sys.argv[1], 'rb') as fh:
    m = email.message_from_binary_file(fh)
for what in ('to', 'cc'):
    for _, a in email.utils.getaddresses(m.get_all(what, [])):
        print(f'{what}\t{a.lower()}')
print('subject\t' + ' '.join(str(email.header.make_header(email.header.decode_header(m['Subject'] or ''))).split()))
for l in m.get_payload(decode=True).decode('utf-8', 'replace').split('\n'):
    if l.strip() and not re.match(r'(From|Date): ', l):
        print('log\t' + l)
        break
EOF
	fi
	awk -F'\t' -v w="$2" '$1 == w { sub(/^[^\t]*\t/, ""); print }' "$fields"
}
# to_is "ADDR..." FILE...: each mail is To: exactly these addresses.
to_is() {
	local want f got
	want=$(tr ' ' '\n' <<<"$1" | sort -u | paste -sd' ')
	shift
	for f; do
		got=$(mail_field "$f" to | sort -u | paste -sd' ')
		[ "$got" = "$want" ] || { warn "$(basename "$f"): To: $got"; return 1; }
	done
}
# cc_has "ADDR..." FILE...: each mail Cc's all these addresses.
cc_has() {
	local f missing
	for f in "${@:2}"; do
		missing=$(comm -23 <(tr ' ' '\n' <<<"$1" | sort -u) <(mail_field "$f" cc | sort -u) | paste -sd' ')
		[ -z "$missing" ] || { warn "$(basename "$f"): no Cc: $missing"; return 1; }
	done
}
# nobody_has ADDR FILE...: no mail is To: or Cc: ADDR.
nobody_has() {
	local f
	for f in "${@:2}"; do
		! grep -qxF "$1" <<<"$(mail_field "$f" to; mail_field "$f" cc)" ||
			{ warn "$(basename "$f") is addressed to $1"; return 1; }
	done
}
# subjects PREFIX FILE...: mail k of the n+1 is "[PREFIX k/n] ...".
subjects() {
	local prefix=$1 k=0 f got
	shift
	for f; do
		got=$(mail_field "$f" subject)
		[[ $got == "[$prefix $k/$n] "* ]] || { warn "$(basename "$f"): Subject: $got"; return 1; }
		k=$((k + 1))
	done
}
# log_begins LINE FILE: the change log of FILE begins with LINE.
log_begins() {
	local got
	got=$(mail_field "$2" log)
	[ "$got" = "$1" ] || { warn "$(basename "$2") begins: $got"; return 1; }
}
# gm ARGS...: the addresses get_maintainer.pl names for the received
# patches, lower case, one a line.
gm() {
	(cd "$TREE" && ./scripts/get_maintainer.pl --nogit --nogit-fallback --norolestats --nofixes "$@" "${v1[@]:1}") |
		sed -E 's/.*<([^>]*)>.*/\1/' | tr '[:upper:]' '[:lower:]' | sort -u
}
# headers VERSION-TAG FILE...: the headers the series must have
# (gm_all, gm_lists, gm_people: what get_maintainer.pl names).
headers() {
	local v=${1:+ $1} what
	shift
	what="$SERIES${v}"
	check "$what: To: the lists get_maintainer.pl names ($(wc -l <<<"$gm_lists"))" to_is "$gm_lists" "$@"
	check "$what: Cc: the people get_maintainer.pl names ($(wc -l <<<"$gm_people"))" cc_has "$gm_people" "$@"
	check "$what: subjects [PATCH$v k/$n]" subjects "PATCH$v" "$@"
	check "$what: not addressed to $STABLE_TO" nobody_has "$STABLE_TO" "$@"
	check "$what: the cover letter is the branch description, not git's template" \
		none_has "*** SUBJECT HERE ***" "*** BLURB HERE ***" "$1"
	check "$what: no placeholder identity left" none_has "$PH_EMAIL" "$PH_NAME" "$@"
	check "$what: From: is the test identity" all_have "From: $name <$email>" "$@"
	check "$what: patches signed off by the test identity" all_have "Signed-off-by: $name <$email>" "${@:2}"
}

# --- SERIES=stable: the request to the stable team ---------------------------
# body_of FILE: the decoded body of a mail.
body_of() {
	$py - "$1" <<'EOF'
import email, sys
with open(sys.argv[1], 'rb') as fh:
    m = email.message_from_binary_file(fh)
sys.stdout.write(m.get_payload(decode=True).decode('utf-8', 'replace'))
EOF
}
# has_diff FILE: FILE holds a line of a diff.
has_diff() {
	grep -qE '^(diff --git |--- a/|\+\+\+ b/|@@ -[0-9])' "$1"
}
no_diff() { ! has_diff "$1"; }
no_signoff() { ! grep -qi '^Signed-off-by:' "$1"; }
# section_addrs: the addresses of the M: and L: lines of the sections the
# request Cc's, read from the tree's MAINTAINERS (lower case, one a line).
section_addrs() {
	local s
	for s in "${STABLE_SECTIONS[@]}"; do
		awk -v s="$s" '$0 == s { on = 1; next } /^$/ { on = 0 } on && /^[ML]:/' "$TREE/MAINTAINERS"
	done | sed -E 's/^[ML]:[[:space:]]*//; s/.*<([^>]*)>.*/\1/' | tr '[:upper:]' '[:lower:]' | sort -u
}
stable_tests() {
	local out f body subj want log2 f2 v1_id
	check "V=abc is refused" refused "is not a version number" V=abc
	check "SEND=2 is refused" refused "SEND='2'" SEND=2
	check "a missing identity is refused" refused "user.name/user.email are not set" GIT_CONFIG_GLOBAL=/dev/null
	check "v2 without a sent v1 is refused" refused "no record of v1" V=2
	sleep 1
	check "the refusals sent nothing ($(count) mails received)" test "$(count)" -eq 0

	msg "dry run (no SEND, no SIGNOFF)"
	out=$("$TOP/scripts/send.sh" 2>&1) || { printf '%s\n' "$out" >&2; die "the dry run failed"; }
	sleep 1
	check "the dry run sends nothing ($(count) mails received)" test "$(count)" -eq 0
	check "the dry run prints one mail" test "$(grep -c '^Subject: ' <<<"$out")-$(grep -c '^----- end of mail -----$' <<<"$out")" = "2-1"
	check "the dry run is git send-email --dry-run" grep -q '^Dry-OK' <<<"$out"
	check "the diff check finds a diff line (it can fail)" has_diff <(printf 'x\ndiff --git a/f b/f\n')
	printf '%s\n' "$out" >"$tmp/dry.log"
	check "the dry run prints no diff" no_diff "$tmp/dry.log"

	msg "sending the request to 127.0.0.1:$SMTP_PORT (SEND=1, no SIGNOFF)"
	SEND=1 "$TOP/scripts/send.sh" >"$tmp/v1.log" 2>&1 || { cat "$tmp/v1.log" >&2; die "sending the request failed"; }
	check "one mail received ($(count))" test "$(count)" -eq 1
	f=$(find "$mbox/new" "$mbox/cur" -type f | head -n 1)
	[ -n "$f" ] || die "no mail arrived"
	body=$(body_of "$f")
	subj=$(mail_field "$f" subject)
	want=$(section_addrs)
	check "To: $STABLE_TO only" to_is "$STABLE_TO" "$f"
	check "Cc: the upstream author, $UPSTREAM_AUTHOR" cc_has "$UPSTREAM_AUTHOR" "$f"
	check "Cc: the maintainers and lists of ${STABLE_SECTIONS[*]} ($(wc -l <<<"$want"))" cc_has "$want" "$f"
	check "Cc: kvm@vger.kernel.org" cc_has kvm@vger.kernel.org "$f"
	check "the subject names the commit: $UPSTREAM (\"$UPSTREAM_SUBJECT\")" \
		grep -qF "$UPSTREAM (\"$UPSTREAM_SUBJECT\")" <<<"$subj"
	check "the body names $UPSTREAM" grep -qF "$UPSTREAM" <<<"$body"
	check "the body names the commit it fixes, $FIXES" grep -qF "$FIXES" <<<"$body"
	check "the body names the target trees 6.18.y and 6.12.y" grep -qF "please apply to 6.18.y and 6.12.y" <<<"$body"
	check "no diff in the mail" no_diff "$f"
	check "nothing signed off in the mail" no_signoff "$f"
	check "From: is the test identity" all_have "From: $name <$email>" "$f"
	check "no placeholder identity" none_has "$PH_EMAIL" "$PH_NAME" "$f"
	v1_id=$(grep -m1 -i '^Message-ID:' "$f" | cut -d' ' -f2)
	check "its Message-ID is recorded" test "$(cat "$STATE/sent/stable-request/v1/msgid" 2>/dev/null)" = "$v1_id"
	check "resending v1 is refused" refused "was already sent" SEND=1

	msg "sending v2 of the request"
	V=2 SEND=1 "$TOP/scripts/send.sh" >"$tmp/v2.log" 2>&1 || { cat "$tmp/v2.log" >&2; die "sending v2 failed"; }
	check "v2: a second mail received ($(count))" test "$(count)" -eq 2
	f2=$(grep -rl -i "^In-Reply-To: $v1_id" "$mbox/new" "$mbox/cur" 2>/dev/null | head -n 1 || true)
	check "v2 replies to v1 ($v1_id)" test -n "$f2"
	log2=$(mail_field "${f2:-/dev/null}" subject 2>/dev/null || true)
	check "v2's subject is [STABLE REQUEST v2]" grep -qF "[STABLE REQUEST v2]" <<<"$log2"
}
if [ "$SERIES" = stable ]; then
	stable_tests
	msg "test-send ($SERIES) took $(($(date +%s) - t0)) s"
	[ "$fails" -eq 0 ] || die "$fails send checks failed; see the FAILED lines above"
	msg "PASS: the stable request end to end over SMTP on 127.0.0.1:$SMTP_PORT ($SERIES)"
	exit 0
fi

# --- refusals ---------------------------------------------------------------
check "V=abc is refused" refused "is not a version number" V=abc
check "V=0 is refused" refused "is not a version number" V=0
check "SIGNOFF=bogus is refused" refused "SIGNOFF='bogus': use SIGNOFF=1" SIGNOFF=bogus
check "a missing identity is refused" refused "user.name/user.email are not set" GIT_CONFIG_GLOBAL=/dev/null SIGNOFF=1
check "v2 without a sent v1 is refused" refused "no record of v1" V=2 SIGNOFF=1
check "without SIGNOFF the dry run is refused, saying how to sign off" refused "make send SIGNOFF=1" SEND=0
again="make send SIGNOFF=1 SERIES=$SERIES"
check "without SIGNOFF sending is refused, saying how to sign off" refused "$again SEND=1" SEND=1
sleep 1
check "the refusals sent nothing ($(count) mails received)" test "$(count)" -eq 0

# --- dry run ----------------------------------------------------------------
msg "dry run of v1"
SIGNOFF=1 "$TOP/scripts/send.sh" >"$tmp/dry.log" 2>&1 || { cat "$tmp/dry.log" >&2; die "the dry run failed"; }
sleep 1
check "the dry run sends nothing ($(count) mails received)" test "$(count)" -eq 0

# --- v1 ---------------------------------------------------------------------
msg "sending v1 to 127.0.0.1:$port with SIGNOFF=1"
SIGNOFF=1 SEND=1 "$TOP/scripts/send.sh" >"$tmp/v1.log" 2>&1 || { cat "$tmp/v1.log" >&2; die "sending v1 failed"; }
check "v1: $((n + 1)) mails received" test "$(count)" -eq $((n + 1))
files_of "" >"$tmp/v1.list"
mapfile -t v1 < <(cut -f2 "$tmp/v1.list")
check "v1: mails 0..$n in order" test "$(cut -f1 "$tmp/v1.list" | paste -sd,)" = "$(seq -s, 0 "$n")"
gm_lists=$(gm --nom --nor --l --nos)
gm_people=$(gm --m --r --nol --nos)
headers "" "${v1[@]}"
v1_cover=$(grep -m1 -i '^Message-ID:' "${v1[0]}" | cut -d' ' -f2)
[ -n "$v1_cover" ] || die "v1's cover letter arrived without a Message-ID"
check "v1: patches reply to the cover letter" all_have "In-Reply-To: $v1_cover" "${v1[@]:1}"
branch=$(git -C "$TREE" symbolic-ref --short HEAD)
check "v1: the cover letter's Message-ID is recorded" \
	test "$(cat "$STATE/sent/$SERIES/$branch/v1/cover-msgid")" = "$v1_cover"

# git am what arrived, in patch order, onto the base in a throwaway clone.
msg "git am of the received v1 onto $BASE_TAG"
gitdir=$(git -C "$TREE" rev-parse --path-format=absolute --git-common-dir)
am=$tmp/am
git clone -q --shared --no-checkout "$gitdir" "$am"
# Only the directories the series touches are checked out.
mapfile -t dirs < <(git -C "$TREE" diff --name-only "$BASE_TAG" HEAD | xargs -n1 dirname | grep -vx . | sort -u)
git -C "$am" sparse-checkout set --cone "${dirs[@]}"
git -C "$am" checkout -q --detach "$(git -C "$TREE" rev-parse "$BASE_TAG^{commit}")"
git -C "$am" -c user.name="$name" -c user.email="$email" am -q "${v1[@]:1}" ||
	die "git am of the received v1 failed in $am"
want=$(git -C "$TREE" rev-parse "$sent_tip^{tree}")
got=$(git -C "$am" rev-parse 'HEAD^{tree}')
check "git am of v1 gives the tree of the $n patch(es) sent ($got)" test "$got" = "$want"
check "git am of v1 gives $n commits by the test identity" test \
	"$(git -C "$am" log --format='%an <%ae>' "$BASE_TAG..HEAD" | sort -u)" = "$name <$email>"
check "resending v1 is refused" refused "was already sent" SEND=1 SIGNOFF=1

# --- signed off in the tree -------------------------------------------------
# A copy of the tree (the directories the series touches, scripts/ and
# MAINTAINERS; get_maintainer.pl also wants the top-level directories to
# exist), on the same branch with the same cover letter.
msg "a copy of the tree, to be signed off by the test identity"
own=$tmp/own
git clone -q --shared --no-checkout "$gitdir" "$own"
git -C "$own" sparse-checkout set --cone "${dirs[@]}" scripts
git -C "$own" checkout -q "$branch"
(cd "$own" && mkdir -p Documentation arch include drivers fs init ipc kernel lib)
git -C "$own" config "branch.$branch.description" "$(git -C "$TREE" config "branch.$branch.description")"
orig=$(git -C "$own" rev-parse HEAD)
git -C "$own" -c user.name="$name" -c user.email="$email" rebase -q --signoff "$BASE_TAG"
check "'git rebase --signoff' alone leaves the placeholder, and is refused" \
	refused "$n of $n commits carry the placeholder" TREE="$own"
git -C "$own" reset -q --hard "$orig"
out=$(TREE=$own "$TOP/scripts/send.sh" 2>&1) && die "send.sh without SIGNOFF did not refuse the placeholder series"
cmd=$(sed -n 's/^ *\(git -C .* rebase .*\)$/\1/p' <<<"$out")
[ -n "$cmd" ] || { printf '%s\n' "$out" >&2; die "the refusal does not say which git command signs the commits off"; }
msg "running the refusal's command: $cmd"
bash -c "$cmd" >"$tmp/rebase.log" 2>&1 || { cat "$tmp/rebase.log" >&2; die "the command the refusal suggests failed"; }
check "after it, the $n_all commits are the test identity's" test \
	"$(git -C "$own" log --format='%an <%ae>|%cn <%ce>' "$BASE_TAG..HEAD" | sort -u)" = "$name <$email>|$name <$email>"
check "after it, each commit is signed off by the test identity alone" test \
	"$(git -C "$own" log --format='%(trailers:key=Signed-off-by,valueonly,separator=%x2C )' "$BASE_TAG..HEAD" | sort -u)" = "$name <$email>"
check "after it, the tree is the series' tree" test "$(git -C "$own" rev-parse 'HEAD^{tree}')" = "$(git -C "$TREE" rev-parse 'HEAD^{tree}')"

# --- v2, from the signed-off tree without SIGNOFF ---------------------------
msg "sending v2 from the signed-off copy, without SIGNOFF"
TREE=$own V=2 SEND=1 "$TOP/scripts/send.sh" >"$tmp/v2.log" 2>&1 || { cat "$tmp/v2.log" >&2; die "sending v2 failed"; }
mapfile -t v2 < <(files_of v2 | cut -f2)
check "v2: $((n + 1)) mails" test ${#v2[@]} -eq $((n + 1))
headers v2 "${v2[@]}"
check "v2: the cover letter replies to v1's ($v1_cover)" \
	all_have "In-Reply-To: $v1_cover" "${v2[0]}"

msg "test-send ($SERIES) took $(($(date +%s) - t0)) s"
[ "$fails" -eq 0 ] || die "$fails send checks failed; see the FAILED lines above"
msg "PASS: send.sh end to end over SMTP on 127.0.0.1:$port ($SERIES)"
