#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Ask the stable team to take upstream commit $UPSTREAM, as
# Documentation/process/stable-kernel-rules.rst option 2 describes: one
# mail to stable@vger.kernel.org naming the commit (id and subject), why
# it should be applied, and to which trees.  No patch: the commit is
# upstream's, it applies to 6.12.y as it is, and nothing in the mail is
# signed off.  'make send' (SERIES=stable, the default) runs this.
#
# To: $STABLE_LIST.  Cc: the commit's author, the maintainers (M:) and
# lists (L:) of the MAINTAINERS sections $SECTIONS, as
# get_maintainer.pl --sections reports them for arch/x86/kvm/hyperv.c in
# $TREE.  From: the sender (git config user.name/user.email, never the
# series' placeholder).
#
#   SEND=1         really send; without it the mail is printed and
#                  git send-email runs with --dry-run
#   V=N            a resend of the request (default 1): "[v2]" in the
#                  subject, In-Reply-To the recorded v(N-1)
#   IN_REPLY_TO=<msgid>  reply to this Message-ID instead
#   SMTP_SERVER, SMTP_PORT   override sendemail.smtpServer(Port)
#   FORCE=1        send a version that was already sent
#
# What was sent is kept in $STATE/sent/stable-request/v<N>/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

STABLE_LIST=stable@vger.kernel.org
# The upstream commit asked for, and the one it fixes.
UPSTREAM=45692aa4a7ce
UPSTREAM_SUBJECT="x86/hyper-v: Validate entire GVA range for non-canonical addresses during PV TLB flush"
FIXES=fa787ac07b3c
FIXES_SUBJECT="KVM: x86/hyper-v: Skip non-canonical addresses during PV TLB flush"
# Its author.  The one place this address is kept.  Checked in the public
# archive of kvm@vger.kernel.org: the posted patch, Message-ID
# <00a7a31b-573b-4d92-91f8-7d7e2f88ea48@tum.de> (2026-02-19), is From:
# this address, and the maintainer's "Applied to kvm-x86 fixes" reply that
# names 45692aa4a7ce, <177273038139.1572110.3041089548814384743.b4-ty@google.com>
# (2026-03-05), is addressed to it.
UPSTREAM_AUTHOR="Manuel Andreas <manuel.andreas@tum.de>"
# The MAINTAINERS sections whose maintainers and lists are Cc'd.
SECTIONS=("KVM X86 HYPER-V (KVM/hyper-v)" "KERNEL VIRTUAL MACHINE FOR X86 (KVM/x86)")
# The trees asked for (see the body for how each was checked).
TARGETS="6.18.y and 6.12.y"

harness_lock
need_stage send

[ "$SERIES" = stable ] || die "stable-request.sh is the SERIES=stable request; SERIES=$SERIES is sent by send.sh"
V=${V:-1}
SEND=${SEND:-0}
[[ $V =~ ^[1-9][0-9]{0,2}$ ]] ||
	die "V='$V' is not a version number; use a positive integer, e.g. 'make send V=2'"
case $SEND in
0 | 1) ;;
*) die "SEND='$SEND': use SEND=1 to send for real, or leave it unset for a dry run" ;;
esac
[ -z "${SIGNOFF:-}" ] ||
	msg "SIGNOFF=${SIGNOFF} is ignored: the stable request carries no patch and nothing is signed off"

tree_require
{ [ -x "$TREE/scripts/get_maintainer.pl" ] && [ -f "$TREE/MAINTAINERS" ]; } ||
	die "$TREE has no scripts/get_maintainer.pl or MAINTAINERS; run 'make tree' (the Cc list comes from the tree's MAINTAINERS)"

name=$(git -C "$TOP" config user.name || true)
email=$(git -C "$TOP" config user.email || true)
{ [ -n "$name" ] && [ -n "$email" ]; } ||
	die "git user.name/user.email are not set; set them with 'git config --global user.name \"Your Name\"' and 'git config --global user.email you@example.org'"
if [ "$name" = "$PH_NAME" ] || [ "$email" = "$PH_EMAIL" ]; then
	die "git user.name/user.email is the series' placeholder '$PH_NAME <$PH_EMAIL>'; set your own identity with 'git config --global user.name/user.email'"
fi

sent=$STATE/sent/stable-request
record=$sent/v$V
if [ "$SEND" = 1 ] && [ -e "$record" ] && [ -z "${FORCE:-}" ]; then
	die "v$V of the stable request was already sent (see $record); send the next version with V=$((V + 1)), or FORCE=1 to send v$V again"
fi
irt=${IN_REPLY_TO:-}
if [ -z "$irt" ] && [ "$V" -gt 1 ]; then
	prev=$sent/v$((V - 1))/msgid
	[ -s "$prev" ] ||
		die "no record of v$((V - 1)) of the stable request having been sent ($prev is missing); pass its Message-ID as IN_REPLY_TO='<...>'"
	irt=$(cat "$prev")
fi
if [ -n "$irt" ]; then
	irt="<${irt#<}"
	irt="${irt%>}>"
	[[ $irt =~ ^\<[^[:space:]\<\>]+@[^[:space:]\<\>]+\>$ ]] ||
		die "IN_REPLY_TO='$irt' is not a Message-ID; use the form '<id@host>'"
fi

# Cc: the author, then the M: and L: lines of the named sections.
gm=$(cd "$TREE" && ./scripts/get_maintainer.pl --nogit --nogit-fallback --sections \
	-f arch/x86/kvm/hyperv.c) || die "get_maintainer.pl failed in $TREE"
cc=("$UPSTREAM_AUTHOR")
for s in "${SECTIONS[@]}"; do
	mapfile -t got < <(awk -v s="$s" '$0 == s { on = 1; next } /^$/ { on = 0 }
		on && /^[ML]:/ { sub(/^[ML]:[ \t]*/, ""); print }' <<<"$gm")
	[ ${#got[@]} -gt 0 ] ||
		die "get_maintainer.pl names no section '$s' for arch/x86/kvm/hyperv.c in $TREE; update SECTIONS in $0"
	cc+=("${got[@]}")
done
# Each address once, and never the stable list itself.
mapfile -t cc < <(printf '%s\n' "${cc[@]}" |
	awk -v to="$STABLE_LIST" '{ a = tolower($0); sub(/.*</, "", a); sub(/>.*/, "", a) }
		a != to && !seen[a]++')

tmp=$(mktemp -d "${TMPDIR:-/tmp}/stable-request.XXXXXX")
on_exit "rm -rf '$tmp'"
mail=$tmp/0001-stable-request.txt
vtag=
[ "$V" = 1 ] || vtag=" v$V"
subject="[STABLE REQUEST$vtag] $TARGETS: $UPSTREAM (\"$UPSTREAM_SUBJECT\")"
msgid="<$(date -u +%Y%m%d%H%M%S).$(od -An -N4 -tx4 /dev/urandom | tr -d ' ').stable-v$V@${email#*@}>"
{
	printf 'From: %s\n' "$(python3 -c 'import email.utils, sys; print(email.utils.formataddr((sys.argv[1], sys.argv[2]), "utf-8"))' "$name" "$email")"
	printf 'Subject: %s\n' "$subject"
	printf 'Message-ID: %s\n' "$msgid"
	if [ -n "$irt" ]; then
		printf 'In-Reply-To: %s\nReferences: %s\n' "$irt" "$irt"
	fi
	printf 'Content-Type: text/plain; charset=UTF-8\n\n'
	cat <<EOF
Hi,

please apply to $TARGETS:

  $UPSTREAM ("$UPSTREAM_SUBJECT")

It is in mainline (read in Linux 7.1.3's arch/x86/kvm/hyperv.c) and has
"Fixes: $FIXES" but no Cc: stable, so it was not picked up.
$FIXES ("$FIXES_SUBJECT")
went to stable; the fix for it did not.

Why: a guest with Hyper-V PV TLB flush enabled can still trigger a host
WARN on Intel.  $FIXES makes kvm_hv_vcpu_flush_tlb() skip a
HvFlushVirtualAddressList{,Ex} entry whose first page is non-canonical,
but then flushes every page of the entry (1 + up to 4095 pages).  An
entry that starts canonical and runs past the canonical boundary, e.g.
0x00007ffffffff000 plus one page, still hands 0x0000800000000000 to
INVVPID, which fails, and vmx_flush_tlb_gva() WARNs (invvpid_error()).
The same check also drops an entry that starts in the non-canonical hole
and runs into the upper half, so its canonical pages are never flushed;
the TLFS says invalid GVAs are ignored, not whole ranges.  $UPSTREAM
checks each page and skips only the non-canonical ones.

Trees, and how each was checked (public stable list archive, stable-rc
push notices, release announcements):

 - 6.12.y: has $FIXES since 6.12.41 (in the 6.12.41 announcement,
   with its dependencies; "Stable-dep-of: $FIXES" in the 6.12.y
   series of 2025-07-23).  Debian's 6.12.117 source (read here) has the
   first-page-only check and not $UPSTREAM.  $UPSTREAM applies
   to 6.12.117 unchanged: "git am -3" applies it cleanly, and patch(1)
   reports "Hunk #1 succeeded at 1998 (offset 17 lines)".
 - 6.18.y: has $FIXES from mainline (in 6.16-rc6).  No stable
   mail, AUTOSEL mail or release announcement naming $UPSTREAM
   was found in the archive.  We could not read a 6.18.y tree here,
   so we have not checked that 6.18.y lacks $UPSTREAM or that it
   applies there.
 - 6.6.y: took $FIXES in August 2025 as an adjusted backport
   (is_noncanonical_address() instead of
   is_noncanonical_invlpg_address(), which 6.6 does not have).
   $UPSTREAM will not apply to it unchanged and needs the same
   adjustment; we have neither built nor tested that, so we do not ask
   for 6.6.y here.
 - 6.1.y, 5.15.y, 5.10.y: not affected as far as we can tell: the
   per-page flush loop both commits change came with 260970862c88
   ("KVM: x86: hyper-v: Handle HVCALL_FLUSH_VIRTUAL_ADDRESS_LIST{,EX}
   calls gently"), merged for 6.2, and no stable mail taking
   $FIXES to those trees was found.  We did not read those
   trees' source.

How it was tested, on 6.12.117 (Debian's kernel, the KVM modules built
out of tree from its source), with a selftest of our own,
hyperv_tlb_flush_ranges: hostile GVA ranges at both canonical boundaries
and the wrap past 2^64 through the four flush hypercalls, every GVA
that KVM hands to the vendor flush recorded with a kprobe and judged
against the TLFS rule:

 - AMD, QEMU TCG (SVM with NPT), 48-bit and LA57 hosts: stock modules
   flush wrong pages in 22 or 23 of 58 cases (48-bit) and 12 (LA57);
   with $UPSTREAM applied as it is (git am -3), all 58 cases pass on
   both: 57 exact and one superset (an unrelated full flush covered
   the range), none wrong, no WARN.
 - Intel, Bochs (emulated VMX with EPT and VPID, 48-bit), run with our
   6.12.y modules, whose per-page check is the same rule (not with
   $UPSTREAM itself): the stock modules print "invvpid failed:
   ext=0x0 vpid=1 gva=0x800000000000" and the WARN at vmx.c:483 from
   vmx_flush_tlb_gva() <- kvm_hv_vcpu_flush_tlb(), and 20-21 cases are
   wrong; the patched modules get no wrong case and no WARN.
 - KUnit: the page-by-page rule as a unit test of the range expansion
   (32 cases: the boundaries at 48 and 57 bits from either side, the
   wrap, 200,000 random entries against a reference model) passes on
   our 6.12.y series; it tests our code, not the commit.

Thanks.
EOF
} >"$mail"

# The request carries no patch.
if grep -nE '^(diff --git |--- a/|\+\+\+ b/|@@ -[0-9])' "$mail" >&2; then
	die "the stable request contains diff lines (above); option 2 asks for no patch"
fi
grep -qF "$PH_EMAIL" "$mail" && die "the stable request contains the placeholder identity $PH_EMAIL"

args=(--no-thread --confirm=never --8bit-encoding=UTF-8 --suppress-cc=self
	--suppress-cc=bodycc --suppress-cc=sob --suppress-cc=misc-by
	--from="$(python3 -c 'import email.utils, sys; print(email.utils.formataddr((sys.argv[1], sys.argv[2])))' "$name" "$email")"
	--to="$STABLE_LIST")
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

msg "stable request v$V (stable-kernel-rules.rst option 2): To: $STABLE_LIST"
msg "Cc: ${cc[*]}"
if [ "$SEND" = 0 ]; then
	msg "dry run (SEND=1 sends); the mail:"
	printf 'To: %s\nCc: %s\n' "$STABLE_LIST" "$(printf '%s, ' "${cc[@]}" | sed 's/, $//')"
	cat "$mail"
	printf '%s\n' "----- end of mail -----"
fi
(cd "$TOP" && git send-email "${args[@]}" "$mail") ||
	die "git send-email failed; check the SMTP settings (sendemail.* config or SMTP_SERVER/SMTP_PORT)"

if [ "$SEND" = 1 ]; then
	rm -rf "$record"
	mkdir -p "$record"
	cp "$mail" "$record/"
	printf '%s\n' "$msgid" >"$record/msgid"
	msg "sent the stable request v$V; Message-ID $msgid recorded in $record"
else
	msg "dry run done; nothing was sent (SEND=1 sends v$V)"
fi
