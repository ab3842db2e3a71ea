#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Tests of the harness itself.
#   test-harness.sh shellcheck   every script is shellcheck-clean
#   test-harness.sh errors       wrong input gets a clear error and leaves
#                                nothing half-made behind
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

fails=0
ok()  { echo "PASS $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# expect_fail NAME PATTERN CMD...: CMD must fail and say PATTERN.
expect_fail() {
	local name=$1 pat=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		bad "$name: succeeded, expected an error"
	elif grep -qE -- "$pat" <<<"$out"; then
		ok "$name: $(grep -E -- "$pat" <<<"$out" | head -n1)"
	else
		bad "$name: error did not say /$pat/:"
		printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
	fi
}

# expect_no_tree NAME DIR: a failed tree.sh left neither DIR nor DIR.tmp.
expect_no_tree() {
	if [ -e "$2" ] || [ -e "$2.tmp" ]; then
		bad "$1: a half-applied tree was left behind"
	else
		ok "$1: no tree left behind"
	fi
}

do_shellcheck() {
	need_cmd shellcheck shellcheck
	(cd "$TOP" && shellcheck -x scripts/*.sh .ci/run) && ok "shellcheck: scripts/*.sh .ci/run"
}

do_errors() {
	base_env
	local tmp
	tmp=$(mktemp -d "$BUILD/test-harness.XXXXXX")
	trap 'rm -rf "$tmp"' RETURN
	local t=$tmp/tree

	expect_fail "KSRC missing" "KSRC=.*no such directory" \
		env TREE="$t" KSRC="$tmp/nope" "$TOP/scripts/tree.sh"
	# Outside of any git repository (build/ is inside the project's).
	local plain
	plain=$(mktemp -d "${TMPDIR:-/tmp}/plain.XXXXXX")
	expect_fail "KSRC not git" "not a git work tree" \
		env TREE="$t" KSRC="$plain" "$TOP/scripts/tree.sh"
	git -C "$plain" init -q
	expect_fail "KSRC not Linux" "does not look like a Linux tree" \
		env TREE="$t" KSRC="$plain" "$TOP/scripts/tree.sh"
	rm -rf "$plain"

	# A user's own tree: the series goes on with git am -3.
	msg "cloning the base as a user's kernel tree"
	git clone -q --shared --no-checkout "$BASE_REPO" "$tmp/ksrc"
	git -C "$tmp/ksrc" sparse-checkout set --cone arch/x86/kvm
	git -C "$tmp/ksrc" checkout -q
	if TREE=$t KSRC=$tmp/ksrc TREE_SPARSE=1 "$TOP/scripts/tree.sh" >"$tmp/log" 2>&1 &&
	   [ "$(git -C "$t" rev-list --count "$BASE_TAG..HEAD")" -eq \
	     "$(find "$TOP/patches" -name '[0-9]*.patch' ! -name '0000-*' | wc -l)" ]; then
		ok "KSRC tree: every patch applied with git am -3"
	else
		bad "KSRC tree: $(tail -n 3 "$tmp/log")"
	fi
	# Work in the tree that is not exported is never thrown away.
	echo "/* local edit */" >>"$t/arch/x86/kvm/hyperv.c"
	expect_fail "export with uncommitted changes" "uncommitted changes" \
		env TREE="$t" "$TOP/scripts/export.sh" "$tmp/out"
	git -C "$t" commit -qam "local edit"
	expect_fail "tree over unexported work" "holds work that differs from patches/" \
		env TREE="$t" KSRC="$tmp/ksrc" TREE_SPARSE=1 "$TOP/scripts/tree.sh"
	if [ "$(git -C "$t" log -1 --format=%s)" = "local edit" ]; then
		ok "tree over unexported work: the work is still there"
	else
		bad "tree over unexported work: the commit is gone"
	fi
	rm -rf "$t"

	# A base the series does not apply to.
	sed -i 's/if (entries\[i\] == KVM_HV_TLB_FLUSHALL_ENTRY)/if (entries[i] == KVM_HV_TLB_FLUSHALL_ENTRY || !count)/' \
		"$tmp/ksrc/arch/x86/kvm/hyperv.c"
	sed -i 's/^\t\tgva = entries\[i\] & PAGE_MASK;/\t\tgva = entries[i] \& PAGE_MASK; \/* changed *\//' \
		"$tmp/ksrc/arch/x86/kvm/hyperv.c"
	git -C "$tmp/ksrc" -c user.name=Test -c user.email=test@example.invalid \
		commit -qam "conflicting change"
	expect_fail "base does not apply" "0001-.*does not apply.*arch/x86/kvm/hyperv.c" \
		env TREE="$t" KSRC="$tmp/ksrc" "$TOP/scripts/tree.sh"
	expect_no_tree "base does not apply" "$t"

	# A broken patch in the series.
	mkdir "$tmp/patches"
	cp "$TOP"/patches/*.patch "$tmp/patches/"
	local p2
	p2=$(find "$tmp/patches" -name '0002-*.patch')
	sed -i '0,/^@@ /s/^@@ -\([0-9]*\),/@@ -9\1,/' "$p2"
	sed -i '0,/^-[^-]/s/^-\([^-]\)/-XX\1/' "$p2"
	expect_fail "broken patch" "0002-.*does not apply" \
		env TREE="$t" PATCHES="$tmp/patches" "$TOP/scripts/tree.sh"
	expect_no_tree "broken patch" "$t"

	# A missing tool, for a user who is not root.
	if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null; then
		expect_fail "missing package (non-root)" "apt-get install -y kvm-hv-no-such-package" \
			runuser -u nobody -- env HOME="$tmp" bash -c \
			". '$TOP/scripts/lib.sh'; need_pkgs kvm-hv-no-such-package"
	fi

	# A pinned version Debian no longer has: the newest 6.12 instead.
	local out
	if out=$(KVER_PIN=6.12.1-1~deb12u1 "$TOP/scripts/base.sh" --which 2>&1) &&
	   grep -q "WARNING: the pinned linux-source-6.12 6.12.1-1~deb12u1 is gone.*falling back to the newest 6.12, 6.12" <<<"$out"; then
		ok "pin gone: $(grep WARNING <<<"$out")"
	else
		bad "pin gone: no fallback warning naming both versions: $out"
	fi

	# Malformed command-line values.
	expect_fail "CPU=bogus" "CPU" env CPU=bogus "$TOP/scripts/selftests.sh"
	expect_fail "MODS=bogus" "MODS" env MODS=bogus "$TOP/scripts/selftests.sh"
	expect_fail "V=abc" "V" env V=abc "$TOP/scripts/send.sh"
}

case "${1:-}" in
shellcheck) do_shellcheck ;;
errors) do_errors ;;
*) die "usage: $0 shellcheck|errors" ;;
esac
[ "$fails" -eq 0 ] || die "$fails harness test(s) failed"
