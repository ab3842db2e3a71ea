#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Send the mainline series in $TREE ($BASE_TAG..HEAD) with git send-email.
#
# The patches are regenerated with git format-patch (cover letter from the
# branch description, as export.sh does), every mail gets a Message-ID,
# and a v2+ cover letter replies to the cover letter of the version before
# it.  Lists go To:, people Cc:, as scripts/get_maintainer.pl says.
#
# SERIES=stable (the default) is not a patch series to send: the 6.12.y
# fix is upstream's commit 45692aa4a7ce, which the stable team is asked to
# take (stable-kernel-rules.rst option 2), so this hands over to
# scripts/stable-request.sh, which sends that request.
#
# Signing off is the sender's own act (the Developer's Certificate of
# Origin), so without an explicit choice this stops and says how to make
# it.  The stored series carries the placeholder identity "$PH_NAME
# <$PH_EMAIL>" as author and in its Signed-off-by lines; either
#
#   SIGNOFF=1      puts the sender's identity (git config user.name and
#                  user.email) in its place in the mails (the tree and
#                  patches/ are not changed), or
#   (no SIGNOFF)   the commits in $TREE already carry the sender's own
#                  Signed-off-by and no placeholder (the refusal prints a
#                  git rebase command that does it).
#
#   V=N            version (default 1); N > 1 gives [PATCH vN n/m]
#   SEND=1         really send; without it, git send-email --dry-run
#   IN_REPLY_TO=<msgid>  thread the cover letter under this Message-ID
#                  instead of the recorded one of v(N-1)
#   SMTP_SERVER, SMTP_PORT   override sendemail.smtpServer(Port)
#   FORCE=1        send a version that was already sent
#
# What was really sent is kept in $STATE/sent/<series>/<branch>/v<N>/ (the
# mails and the cover letter's Message-ID; STATE is ~/.local/state/kvm-hv-flush),
# which survives 'make clean' and 'make distclean'.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The 6.12.y route: a request to the stable team, not a patch series.
if [ "$SERIES" = stable ]; then
	exec "$(dirname "$0")/stable-request.sh"
fi

harness_lock
need_stage send

V=${V:-1}
SEND=${SEND:-0}
SIGNOFF=${SIGNOFF:-}
[[ $V =~ ^[1-9][0-9]{0,2}$ ]] ||
	die "V='$V' is not a version number; use a positive integer, e.g. 'make send V=2'"
case $SEND in
0 | 1) ;;
*) die "SEND='$SEND': use SEND=1 to send for real, or leave it unset for a dry run" ;;
esac
case $SIGNOFF in
'' | 0 | 1) ;;
*) die "SIGNOFF='$SIGNOFF': use SIGNOFF=1 to sign the mails off as yourself (your git user.name/user.email in place of the placeholder author and Signed-off-by), or leave it unset when the commits in the tree carry your own Signed-off-by" ;;
esac

tree_require
tree_report
branch=$(git -C "$TREE" symbolic-ref --short HEAD 2>/dev/null) ||
	die "$TREE is on a detached HEAD; check out the series branch ($SERIES_BRANCH)"
git -C "$TREE" config "branch.$branch.description" >/dev/null ||
	die "branch '$branch' of $TREE has no description; write the cover letter with 'git -C $TREE branch --edit-description'"
if ! git -C "$TREE" diff --quiet HEAD -- || ! git -C "$TREE" diff --cached --quiet; then
	warn "$TREE has uncommitted changes; only its commits are sent"
fi
n=$(git -C "$TREE" rev-list --count "$BASE_TAG..HEAD")
[ "$n" -gt 0 ] || die "$TREE has no commits on top of $BASE_TAG; nothing to send"

# The sender: the user's own identity, never the placeholder.  Read it
# outside $TREE, whose local config carries the placeholder.
name=$(git -C "$TOP" config user.name || true)
email=$(git -C "$TOP" config user.email || true)
{ [ -n "$name" ] && [ -n "$email" ]; } ||
	die "git user.name/user.email are not set; set them with 'git config --global user.name \"Your Name\"' and 'git config --global user.email you@example.org'"
if [ "$name" = "$PH_NAME" ] || [ "$email" = "$PH_EMAIL" ]; then
	die "git user.name/user.email is the series' placeholder '$PH_NAME <$PH_EMAIL>'; set your own identity with 'git config --global user.name/user.email'"
fi
me="$name <$email>"

# The sign-off.  Which commits still carry the placeholder (as author or
# anywhere in the message), and which lack the sender's Signed-off-by.
mapfile -t commits < <(git -C "$TREE" rev-list --reverse "$BASE_TAG..HEAD")
placeholder=() unsigned=()
for c in "${commits[@]}"; do
	h=$(git -C "$TREE" rev-parse --short "$c")
	log=$(git -C "$TREE" log -1 --format='%an <%ae>%n%B' "$c")
	if grep -qF -e "$PH_EMAIL" -e "$PH_NAME" <<<"$log"; then placeholder+=("$h"); fi
	if ! grep -qxF "Signed-off-by: $me" <<<"$log"; then unsigned+=("$h"); fi
done
if [ "$SIGNOFF" != 1 ] && [ $((${#placeholder[@]} + ${#unsigned[@]})) -gt 0 ]; then
	# shell-quote for the command we suggest
	q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
	again="make send SIGNOFF=1 SERIES=$SERIES"
	[ "$V" = 1 ] || again+=" V=$V"
	[ "$SEND" = 0 ] || again+=" SEND=1"
	{
		echo "ERROR: the series is not signed off by you, and 'make send' does not sign off"
		echo "for you unless you say so: a Signed-off-by is your own statement (the Developer's"
		echo "Certificate of Origin, Documentation/process/submitting-patches.rst)."
		[ ${#placeholder[@]} -eq 0 ] ||
			echo "  ${#placeholder[@]} of $n commits carry the placeholder '$PH_NAME <$PH_EMAIL>': ${placeholder[*]}"
		[ ${#unsigned[@]} -eq 0 ] ||
			echo "  ${#unsigned[@]} of $n commits lack 'Signed-off-by: $me': ${unsigned[*]}"
		echo "Choose one:"
		echo "  - SIGNOFF=1: the mails carry you ($me) as author and in Signed-off-by"
		echo "    in place of the placeholder; the tree and patches/ stay as they are:"
		echo "      $again"
		echo "  - or sign the commits off in the tree yourself; then 'make send' needs no SIGNOFF."
		echo "    This makes you the author of every commit on $BASE_TAG..HEAD and puts your"
		echo "    Signed-off-by in place of the placeholder's ('make export' would then write you into patches/):"
		printf '      git -C %s -c user.name=%s -c user.email=%s rebase %s -x %s\n' \
			"$(q "$TREE")" "$(q "$name")" "$(q "$email")" "$BASE_TAG" \
			"$(q "git log -1 --format=%B | grep -vxF \"Signed-off-by: $PH_NAME <$PH_EMAIL>\" | git commit -q --amend --reset-author -s -F -")"
	} >&2
	exit 1
fi


sent=$STATE/sent/$SERIES/$branch
record=$sent/v$V
if [ "$SEND" = 1 ] && [ -e "$record" ] && [ -z "${FORCE:-}" ]; then
	die "v$V of '$branch' was already sent (see $record); send the next version with V=$((V + 1)), or FORCE=1 to send v$V again"
fi
irt=${IN_REPLY_TO:-}
if [ -z "$irt" ] && [ "$V" -gt 1 ]; then
	prev=$sent/v$((V - 1))/cover-msgid
	[ -s "$prev" ] ||
		die "no record of v$((V - 1)) having been sent ($prev is missing); pass its cover letter's Message-ID as IN_REPLY_TO='<...>'"
	irt=$(cat "$prev")
fi
if [ -n "$irt" ]; then
	irt="<${irt#<}"
	irt="${irt%>}>"
	[[ $irt =~ ^\<[^[:space:]\<\>]+@[^[:space:]\<\>]+\>$ ]] ||
		die "IN_REPLY_TO='$irt' is not a Message-ID; use the form '<id@host>'"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/send.XXXXXX")
on_exit "rm -rf '$tmp'"

msg "formatting $n patches of '$branch' as v$V"
vopt=()
[ "$V" -gt 1 ] && vopt=(-v "$V")
GIT_COMMITTER_NAME=$name GIT_COMMITTER_EMAIL=$email \
	git -C "$TREE" -c core.abbrev=12 -c diff.noprefix=false format-patch -q \
		"${vopt[@]}" --cover-letter --cover-from-description=subject \
		--no-thread --no-signature --base="$BASE_TAG" \
		-o "$tmp/mails" "$BASE_TAG..HEAD"
mapfile -t mails < <(find "$tmp/mails" -name '*.patch' | sort)
[ ${#mails[@]} -eq $((n + 1)) ] ||
	die "git format-patch wrote ${#mails[@]} files for $n commits and a cover letter"

# With SIGNOFF=1, put the sender's identity in place of the placeholder.
# Give every mail a Message-ID; the patches reply to the cover letter.
# No placeholder may be left, and every patch must carry the sender's
# Signed-off-by.
cover_id=$(python3 - "$name" "$email" "$PH_NAME" "$PH_EMAIL" "$V" "$irt" "${SIGNOFF:-0}" "${mails[@]}" <<'EOF'
import email.utils, os, re, secrets, sys, time

name, addr, ph_name, ph_email, ver, irt, signoff, *files = sys.argv[1:]
ph = f'{ph_name} <{ph_email}>'
me = f'{name} <{addr}>'
stamp = time.strftime('%Y%m%d%H%M%S', time.gmtime())
rnd = secrets.token_hex(4)
domain = addr.rpartition('@')[2]
ids = [f'<{stamp}.{rnd}.v{ver}-{k}@{domain}>' for k in range(len(files))]
trailer = re.compile(r'^([A-Za-z-]+-by|Cc): ' + re.escape(ph) + r'$')
shortlog = re.compile(re.escape(ph_name) + r' \((\d+)\):$')
bad = []
for k, path in enumerate(files):
    text = open(path, encoding='utf-8').read()
    head, sep, body = text.partition('\n\n')
    hdr = [l for l in head.split('\n')
           if not re.match(r'(?i)(message-id|in-reply-to|references):', l)]
    for i, l in enumerate(hdr):
        if signoff == '1' and l == 'From: ' + ph:
            hdr[i] = 'From: ' + email.utils.formataddr((name, addr), 'utf-8')
    refs = ([irt] if irt else []) + ([ids[0]] if k else [])
    hdr.append('Message-ID: ' + ids[k])
    if refs:
        hdr.append('In-Reply-To: ' + refs[-1])
        hdr.append('References: ' + ' '.join(refs))
    lines = body.split('\n')
    in_log = True
    signed = False
    for i, l in enumerate(lines):
        if l == '---':
            in_log = False
        if signoff == '1' and (in_log or k == 0):
            lines[i] = trailer.sub(lambda m: f'{m.group(1)}: {me}', l)
            if k == 0:
                lines[i] = shortlog.sub(lambda m: f'{name} ({m.group(1)}):', lines[i])
        signed = signed or (in_log and lines[i] == f'Signed-off-by: {me}')
    if k and not signed:
        bad.append(f'{os.path.basename(path)}: no "Signed-off-by: {me}" in its change log; '
                   'sign that commit off in the tree (git commit --amend -s)')
    text = '\n'.join(hdr) + sep + '\n'.join(lines)
    for no, l in enumerate(text.split('\n'), 1):
        if ph_email in l or ph_name in l:
            bad.append(f'{path}:{no}: {l}')
    open(path, 'w', encoding='utf-8').write(text)
if bad:
    sys.exit('placeholder identity or sign-off missing in the mails:\n' + '\n'.join(bad))
print(ids[0])
EOF
) || die "the mails carry the placeholder or lack your Signed-off-by (see above); fix the series' From/Signed-off-by lines in $TREE"

# Lists as To:, people as Cc:, for the whole series.
gm() {
	(cd "$TREE" && ./scripts/get_maintainer.pl --nogit --nogit-fallback --norolestats \
		--nofixes "$@" "${mails[@]:1}")
}
[ -x "$TREE/scripts/get_maintainer.pl" ] || die "$TREE has no scripts/get_maintainer.pl"
mapfile -t to < <(gm --nom --nor --l --nos) || die "get_maintainer.pl failed on the series"
mapfile -t cc < <(gm --m --r --nol --nos) || die "get_maintainer.pl failed on the series"
[ ${#to[@]} -gt 0 ] || { to=("${cc[@]}"); cc=(); }
[ ${#to[@]} -gt 0 ] || die "get_maintainer.pl found no recipients for the series"

args=(--no-thread --confirm=never --8bit-encoding=UTF-8 --suppress-cc=self
	--from="$(python3 -c 'import email.utils, sys; print(email.utils.formataddr((sys.argv[1], sys.argv[2])))' "$name" "$email")")
for a in "${to[@]}"; do args+=(--to="$a"); done
for a in "${cc[@]}"; do args+=(--cc="$a"); done
[ -n "${SMTP_SERVER:-}" ] && args+=(--smtp-server="$SMTP_SERVER")
[ -n "${SMTP_PORT:-}" ] && args+=(--smtp-server-port="$SMTP_PORT")
if [ "$SEND" = 1 ]; then
	if [ -z "${SMTP_SERVER:-}" ] && ! git -C "$TOP" config sendemail.smtpServer >/dev/null &&
		[ ! -x /usr/sbin/sendmail ] && [ ! -x /usr/lib/sendmail ]; then
		die "no way to send mail: set sendemail.smtpServer (git config --global sendemail.smtpServer smtp.example.org) or SMTP_SERVER=host [SMTP_PORT=port]"
	fi
else
	args+=(--dry-run)
fi

msg "v$V: To: ${to[*]}"
msg "v$V: Cc: ${cc[*]:-(none)}"
[ -n "$irt" ] && msg "v$V: cover letter In-Reply-To: $irt"
if [ "$SEND" = 1 ]; then
	msg "sending ${#mails[@]} mails"
else
	msg "dry run (SEND=1 sends): ${#mails[@]} mails"
fi
(cd "$TOP" && git send-email "${args[@]}" "${mails[@]}") ||
	die "git send-email failed; check the SMTP settings (sendemail.* config or SMTP_SERVER/SMTP_PORT)"

if [ "$SEND" = 1 ]; then
	rm -rf "$record"
	mkdir -p "$record"
	cp "${mails[@]}" "$record/"
	printf '%s\n' "$cover_id" >"$record/cover-msgid"
	msg "sent v$V; cover letter Message-ID $cover_id recorded in $record"
else
	msg "dry run done; nothing was sent (SEND=1 sends v$V)"
fi
