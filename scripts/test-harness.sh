#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Tests of the harness itself, one PASS/FAIL line a check.
#   test-harness.sh shellcheck  every script is shellcheck-clean
#   test-harness.sh cc-cache    the kernel builds' CC never hands back
#                               an object of an older .incbin blob
#   test-harness.sh roundtrip   make tree && make export is byte-identical
#   test-harness.sh errors      wrong input gets a clear error and leaves
#                               nothing half-made behind
#   test-harness.sh flows       own tree (KSRC, a git worktree), edit and
#                               test, a pull, nothing lost, concurrency,
#                               Ctrl-C and SIGTERM leave no QEMU behind
#   test-harness.sh readme      the README's shell blocks, run as written
#                               in a scratch copy of the project
#   test-harness.sh faults      each stage of make check, given an injected
#                               fault, FAILs and make check exits non-zero
#   test-harness.sh mainline    the mainline series on the 7.1.3 tarball
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

fails=0
ok()  { echo "PASS $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# check NAME CMD...: CMD must succeed.
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}

# expect_fail NAME PATTERN CMD...: CMD must fail and say PATTERN.
# expect_ok NAME PATTERN CMD...: CMD must succeed and say PATTERN.
expect_fail() { expect fail "$@"; }
expect_ok() { expect ok "$@"; }
expect() {
	local want=$1 name=$2 pat=$3 out rc=0
	shift 3
	out=$("$@" 2>&1) || rc=$?
	if [ "$want" = fail ] && [ "$rc" -eq 0 ]; then
		bad "$name: succeeded, expected an error"
	elif [ "$want" = ok ] && [ "$rc" -ne 0 ]; then
		bad "$name: failed (exit $rc)"
	elif grep -qE -- "$pat" <<<"$out"; then
		ok "$name: $(grep -E -- "$pat" <<<"$out" | head -n1)"
		return
	else
		bad "$name: the output did not say /$pat/:"
	fi
	printf '%s\n' "$out" | tail -n 8 | sed 's/^/    /'
}

# expect_no_tree NAME DIR: a failed tree.sh left neither DIR nor DIR.new.*.
expect_no_tree() {
	if [ -e "$2" ] || compgen -G "$2.new.*" >/dev/null; then
		bad "$1: a half-applied tree was left behind"
	else
		ok "$1: no tree left behind"
	fi
}

# scratch: a temporary directory in $SCR, removed at exit.
SCR=
scratch() {
	mkdir -p "$BUILD"
	SCR=$(mktemp -d "$BUILD/test-harness.XXXXXX")
	on_exit "rm -rf '$SCR'"
}

# --- shellcheck --------------------------------------------------------------
do_shellcheck() {
	need_stage harness
	(cd "$TOP" && shellcheck -x scripts/*.sh .ci/run) && ok "shellcheck: scripts/*.sh .ci/run"
}

# --- the kernel builds' CC ----------------------------------------------------
# KCC (scripts/cc-cache.sh, copied into the cache) must not hand back
# an object whose .incbin blob changed since it was cached.  The control: plain 'ccache gcc' in
# depend mode does hand back the old one, as it once did with piggy.o.
do_cc_cache() {
	need_stage modules
	scratch
	kcc_install
	local d=$SCR/cc cc got
	mkdir -p "$d"
	printf '.section .rodata.blob,"a"\n.incbin "blob"\n' >"$d/piggy.S"
	for cc in "ccache gcc" "$KCC"; do
		rm -rf "$d/ccache"
		got=
		for v in old new; do
			printf '%s' "$v" >"$d/blob"
			# Older than this second, or ccache stores nothing.
			touch -d '-1 minute' "$d/piggy.S" "$d/blob"
			rm -f "$d/piggy.o"
			(cd "$d" && CCACHE_DIR=$d/ccache $cc -c -Wp,-MMD,piggy.d piggy.S -o piggy.o) || {
				bad "cc-cache: '$cc' could not assemble $d/piggy.S"
				return
			}
			got+=$(objcopy -O binary --only-section=.rodata.blob "$d/piggy.o" /dev/stdout)
		done
		case "$cc:$got" in
		"ccache gcc:oldold") ok "cc-cache: control: ccache gcc in depend mode hands back the object of the old .incbin blob" ;;
		"ccache gcc:"*) bad "cc-cache: control: ccache gcc in depend mode gave '$got', not 'oldold': this test shows nothing" ;;
		*:oldnew) ok "cc-cache: $KCC (scripts/cc-cache.sh) assembles the new .incbin blob (old, then new)" ;;
		*) bad "cc-cache: $KCC (scripts/cc-cache.sh) gave '$got' for the blobs old, new: a stale object" ;;
		esac
	done
}

# --- round trip --------------------------------------------------------------
do_roundtrip() {
	tree_require
	local tmp
	scratch
	tmp=$SCR
	"$TOP/scripts/export.sh" "$tmp/out"
	diff -r "$tmp/out" "$PATCHES"
	ok "make tree && make export is byte-identical (${PATCHES#"$TOP"/}, $(find "$tmp/out" -name '*.patch' | wc -l) files)"
}

# --- wrong input ---------------------------------------------------------------
do_errors() {
	base_env
	local tmp
	scratch
	tmp=$SCR
	local t=$tmp/tree

	expect_fail "KSRC missing" "KSRC=.*no such directory" \
		env TREE="$t" KSRC="$tmp/nope" "$TOP/scripts/tree.sh"
	# Outside of any git repository (build/ is inside the project's).
	local plain
	plain=$(mktemp -d "${TMPDIR:-/tmp}/plain.XXXXXX")
	on_exit "rm -rf '$plain'"
	expect_fail "KSRC not git" "not a git work tree" \
		env TREE="$t" KSRC="$plain" "$TOP/scripts/tree.sh"
	git -C "$plain" init -q
	expect_fail "KSRC not Linux" "does not look like a Linux tree" \
		env TREE="$t" KSRC="$plain" "$TOP/scripts/tree.sh"

	# A base the series does not apply to.
	git clone -q --shared --no-checkout "$BASE_REPO" "$tmp/ksrc"
	git -C "$tmp/ksrc" sparse-checkout set --cone arch/x86/kvm
	git -C "$tmp/ksrc" checkout -q
	sed -i 's/if (entries\[i\] == KVM_HV_TLB_FLUSHALL_ENTRY)/if (entries[i] == KVM_HV_TLB_FLUSHALL_ENTRY || !count)/' \
		"$tmp/ksrc/arch/x86/kvm/hyperv.c"
	sed -i 's/^\t\tgva = entries\[i\] & PAGE_MASK;/\t\tgva = entries[i] \& PAGE_MASK; \/* changed *\//' \
		"$tmp/ksrc/arch/x86/kvm/hyperv.c"
	git -C "$tmp/ksrc" -c user.name=Test -c user.email=test@example.invalid \
		commit -qam "conflicting change"
	local before
	before=$(git -C "$tmp/ksrc" rev-parse HEAD)
	expect_fail "base does not apply" "0001-.*does not apply.*arch/x86/kvm/hyperv.c" \
		env TREE="$t" KSRC="$tmp/ksrc" "$TOP/scripts/tree.sh"
	expect_no_tree "base does not apply" "$t"
	check "base does not apply: KSRC untouched" test "$(git -C "$tmp/ksrc" rev-parse HEAD)" = "$before" -a \
		-z "$(git -C "$tmp/ksrc" status --porcelain)"

	# A broken patch in the series.
	mkdir "$tmp/patches"
	cp "$PATCHES"/*.patch "$tmp/patches/"
	local p2
	p2=$(find "$tmp/patches" -name '0002-*.patch')
	sed -i '0,/^@@ /s/^@@ -\([0-9]*\),/@@ -9\1,/' "$p2"
	sed -i '0,/^-[^-]/s/^-\([^-]\)/-XX\1/' "$p2"
	expect_fail "broken patch" "0002-.*does not apply" \
		env TREE="$t" PATCHES="$tmp/patches" "$TOP/scripts/tree.sh"
	expect_no_tree "broken patch" "$t"
	expect_fail "no patches" "no patches in" env TREE="$t" PATCHES="$tmp/nope" "$TOP/scripts/tree.sh"

	# A missing tool, for a user who is not root.  The scripts are copied
	# where that user can read them: the clone may sit in a directory only
	# root can enter.
	if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null; then
		local pub
		pub=$(mktemp -d "${TMPDIR:-/tmp}/nonroot.XXXXXX")
		on_exit "rm -rf '$pub'"
		mkdir -p "$pub/scripts"
		cp "$TOP/scripts/lib.sh" "$pub/scripts/"
		chmod -R a+rX "$pub"
		expect_fail "missing package (non-root)" "apt-get install -y --no-install-recommends kvm-hv-no-such-package" \
			runuser -u nobody -- env HOME="$pub" BUILD="$pub/build" bash -c \
			". '$pub/scripts/lib.sh'; need_pkgs kvm-hv-no-such-package"
	else
		bad "missing package (non-root): no 'nobody' user or no runuser to test with"
	fi

	# A pinned version Debian no longer has: the newest 6.12 instead.
	local out
	if out=$(KVER_PIN=6.12.1-1~deb12u1 "$TOP/scripts/base.sh" --which 2>&1) &&
		grep -q "WARNING: the pinned linux-source-6.12 6.12.1-1~deb12u1 is gone.*falling back to the newest 6.12, 6.12" <<<"$out"; then
		ok "pin gone: $(grep WARNING <<<"$out")"
	else
		bad "pin gone: no fallback warning naming both versions: $out"
	fi

	# Malformed values.
	expect_fail "CPU=bogus" "CPU" env CPU=bogus "$TOP/scripts/selftests.sh"
	expect_fail "MODS=bogus" "MODS" env MODS=bogus "$TOP/scripts/selftests.sh"
	expect_fail "HOST=bogus" "HOST must be amd \\(QEMU, SVM\\) or intel \\(Bochs, VMX\\), not 'bogus'" \
		env HOST=bogus "$TOP/scripts/selftests.sh"
	expect_fail "HOST=bogus (redgreen)" "HOST must be amd" env HOST=bogus "$TOP/scripts/redgreen.sh"
	expect_fail "HOST=intel CPU=la57" "Bochs emulates no LA57" env HOST=intel CPU=la57 "$TOP/scripts/selftests.sh"
	expect_fail "TEST_SOURCES=bogus" "TEST_SOURCES: .* is not a C file" \
		env TEST_SOURCES="$tmp/nope.c" "$TOP/scripts/selftests.sh"
	expect_fail "MODS=bogus (smoke)" "MODS" env MODS=bogus "$TOP/scripts/smoke.sh"
	expect_fail "TEST_TIMEOUT=abc" "TEST_TIMEOUT" env TEST_TIMEOUT=abc "$TOP/scripts/selftests.sh"
	expect_fail "TEST_ATTEMPTS=2 (gone)" "TIMING_ATTEMPTS" env TEST_ATTEMPTS=2 "$TOP/scripts/selftests.sh"
	expect_fail "TIMING_ATTEMPTS=0" "TIMING_ATTEMPTS" env TIMING_ATTEMPTS=0 "$TOP/scripts/selftests.sh"
	expect_fail "TIMING_TESTS=our own test" "never retried" env TIMING_TESTS=hyperv_tlb_flush_ranges "$TOP/scripts/selftests.sh"
	expect_fail "TIMING_ATTEMPTS=x" "TIMING_ATTEMPTS" env TIMING_ATTEMPTS=x "$TOP/scripts/debug.sh"
	expect_fail "V=abc" "V" env V=abc "$TOP/scripts/send.sh"
	# make send SERIES=mainline (the series that is mailed) on a one-commit
	# series that carries the placeholder: a malformed SIGNOFF, and no
	# SIGNOFF at all, are refused, saying how.
	local st=$tmp/send-tree
	local -a sender=(GIT_CONFIG_GLOBAL="$tmp/gitconfig" GIT_CONFIG_NOSYSTEM=1 SERIES=mainline TREE="$st")
	printf '[user]\n\tname = Errors Test\n\temail = errors-test@example.org\n' >"$tmp/gitconfig"
	git init -q -b "$SERIES_BRANCH" "$st"
	git -C "$st" -c user.name=Base -c user.email=base@example.invalid commit -q --allow-empty -m base
	git -C "$st" tag "$BASE_TAG"
	git -C "$st" -c user.name="$PH_NAME" -c user.email="$PH_EMAIL" commit -q -s --allow-empty -m "x: a change"
	git -C "$st" config "branch.$SERIES_BRANCH.description" "x: a series"
	expect_fail "SIGNOFF=bogus" "SIGNOFF='bogus': use SIGNOFF=1" \
		env "${sender[@]}" SIGNOFF=bogus "$TOP/scripts/send.sh"
	expect_fail "no SIGNOFF: refused" "make send SIGNOFF=1 SERIES=mainline$" env -u SIGNOFF "${sender[@]}" "$TOP/scripts/send.sh"
	expect_fail "no SIGNOFF: the git way" "git -C '$st' .* rebase $BASE_TAG -x" \
		env -u SIGNOFF "${sender[@]}" "$TOP/scripts/send.sh"
	expect_fail "SERIES=bogus" "SERIES must be stable or mainline" env SERIES=bogus "$TOP/scripts/tree.sh"
	expect_fail "STAGES=bogus" "no stage 'bogus'" env STAGES=bogus BUILD="$tmp/b" "$TOP/scripts/check.sh"
	# Programs that are there but do not work are caught (a busybox that
	# is not static cannot run in the guest's empty initramfs).
	expect_fail "unusable program" "do not work" bash -c \
		". '$TOP/scripts/lib.sh'; probe_stage() { false; }; need_stage qemu"
}

# --- flows ---------------------------------------------------------------------
# A sparse copy of the base as a user's kernel tree in DIR, with one
# commit of the user's own; prints nothing.
user_tree() {
	local dir=$1
	git clone -q --shared --no-checkout "$BASE_REPO" "$dir"
	git -C "$dir" sparse-checkout set --cone arch/x86/kvm
	git -C "$dir" checkout -q -b work
	echo "# a user's own change" >>"$dir/arch/x86/kvm/Kconfig"
	git -C "$dir" -c user.name=User -c user.email=user@example.invalid commit -qam "a user's commit"
}

do_flows() {
	base_env
	local tmp t p
	scratch
	tmp=$SCR

	# 1. The user's own tree, as a git worktree: every target's
	# 'tree.sh --ensure' keeps using it without KSRC; export never
	# silently moves patches/ onto it; KSRC is never written to.
	user_tree "$tmp/linux"
	git -C "$tmp/linux" worktree add -q --no-checkout "$tmp/wt" -b wt work
	git -C "$tmp/wt" sparse-checkout set --cone arch/x86/kvm
	git -C "$tmp/wt" checkout -q
	local ks_head ks_status
	ks_head=$(git -C "$tmp/wt" rev-parse HEAD)
	ks_status=$(git -C "$tmp/wt" status --porcelain)
	t=$tmp/own
	mkdir "$tmp/p"
	cp "$PATCHES"/*.patch "$tmp/p/"
	p=$tmp/p
	local -a env1=(env TREE="$t" PATCHES="$p" BUILD="$tmp/b" TREE_SPARSE=1)
	expect_ok "own tree: make tree KSRC=<a git worktree>" "tree ready.*a user's commit" \
		"${env1[@]}" KSRC="$tmp/wt" "$TOP/scripts/tree.sh"
	check "own tree: its base is the worktree's HEAD" test \
		"$(git -C "$t" rev-parse "$BASE_TAG")" = "$ks_head"
	check "own tree: it records where it came from" grep -qx "ksrc:$tmp/wt" "$t/.git/kvm-hv-flush/origin"
	expect_ok "own tree: the next target keeps it without KSRC" "up to date.*a user's commit" \
		"${env1[@]}" "$TOP/scripts/tree.sh" --ensure
	expect_ok "own tree: make tree without KSRC keeps it too" "up to date.*a user's commit" \
		"${env1[@]}" "$TOP/scripts/tree.sh"
	expect_ok "own tree: make export goes aside, not to patches/" "exporting to .*export-ksrc instead" \
		"${env1[@]}" "$TOP/scripts/export.sh"
	check "own tree: patches/ unchanged by that export" diff -qr "$p" "$PATCHES"
	check "own tree: the export is there" test -f "$tmp/b/export-ksrc/0000-cover-letter.patch"
	check "own tree: KSRC untouched (HEAD, status)" test \
		"$(git -C "$tmp/wt" rev-parse HEAD)" = "$ks_head" -a "$(git -C "$tmp/wt" status --porcelain)" = "$ks_status"

	# 2. Edit and test: uncommitted and committed work is tested as it is
	# and kept; only 'make tree' refuses to replace it, and a pull of
	# patches/ under a clean tree rebuilds it.
	t=$tmp/edit
	local -a env2=(env TREE="$t" PATCHES="$p" BUILD="$tmp/b" TREE_SPARSE=1)
	"${env2[@]}" "$TOP/scripts/tree.sh" >"$tmp/log" 2>&1 || { cat "$tmp/log"; bad "edit: make tree"; return; }
	check "edit: the tree records the patches it was built from" \
		test "$(cat "$t/.git/kvm-hv-flush/patches-id")" = "$(patches_id "$p")"
	echo "/* an edit */" >>"$t/arch/x86/kvm/hyperv.c"
	expect_ok "edit: targets keep an uncommitted edit" "kept as it is.*uncommitted arch/x86/kvm/hyperv.c" \
		"${env2[@]}" "$TOP/scripts/tree.sh" --ensure
	expect_ok "edit: the tests say how the tree differs" "testing .* as it is.*uncommitted changes in arch/x86/kvm/hyperv.c" \
		"${env2[@]}" bash -c ". '$TOP/scripts/lib.sh'; tree_report"
	git -C "$t" commit -qam "an edit"
	expect_ok "edit: make tree keeps a committed edit" "kept as it is.*commits" \
		"${env2[@]}" "$TOP/scripts/tree.sh"
	# A pull changes patches/ while the tree holds work: make tree refuses
	# and does not advise an export that would undo the pull.
	sed -i '0,/^Subject: /s/^\(Subject: .*\)$/\1 (pulled)/' "$(find "$p" -name '0003-*.patch')"
	expect_fail "pull + work: make tree refuses" "changed since the tree was built.*Exporting now would undo" \
		"${env2[@]}" "$TOP/scripts/tree.sh"
	check "pull + work: the edit is still there" test "$(git -C "$t" log -1 --format=%s)" = "an edit"
	expect_ok "pull + work: other targets test the tree as it is" "holds work of its own; testing the tree as it is" \
		"${env2[@]}" "$TOP/scripts/tree.sh" --ensure
	expect_ok "pull + work: FORCE=1 rebuilds" "rebuilding" "${env2[@]}" FORCE=1 "$TOP/scripts/tree.sh"
	# A pull under a clean tree: the next target rebuilds it.
	sed -i '0,/^Subject: /s/^\(Subject: .*\) (pulled)$/\1 (pulled twice)/' "$(find "$p" -name '0003-*.patch')"
	expect_ok "pull, clean tree: the next target rebuilds" "changed since the tree was built; rebuilding" \
		"${env2[@]}" "$TOP/scripts/tree.sh" --ensure
	check "pull, clean tree: the tree has the pulled change" \
		grep -q "pulled twice" <(git -C "$t" log --format=%s)

	# 3. Nothing lost.
	mkdir -p "$tmp/mine"
	echo precious >"$tmp/mine/file"
	expect_fail "TREE= a directory of the user's: refused" "not a git tree; the harness does not touch it" \
		env TREE="$tmp/mine" PATCHES="$p" BUILD="$tmp/b" "$TOP/scripts/tree.sh"
	check "TREE= a directory of the user's: untouched" grep -qx precious "$tmp/mine/file"
	user_tree "$tmp/mytree"
	git -C "$tmp/mytree" tag -f "$BASE_TAG" HEAD~1 >/dev/null
	local mine_head
	mine_head=$(git -C "$tmp/mytree" rev-parse HEAD)
	expect_ok "TREE= the user's git tree: used as it is" "never replacing it" \
		env TREE="$tmp/mytree" PATCHES="$p" BUILD="$tmp/b" "$TOP/scripts/tree.sh" --ensure
	expect_fail "TREE= the user's git tree: never replaced by KSRC" "never replaced" \
		env TREE="$tmp/mytree" KSRC="$tmp/wt" PATCHES="$p" BUILD="$tmp/b" "$TOP/scripts/tree.sh"
	check "TREE= the user's git tree: untouched" test "$(git -C "$tmp/mytree" rev-parse HEAD)" = "$mine_head"
	# Sent records outlive distclean; clean keeps unexported work.
	mkdir -p "$tmp/state/sent/stable/x/v1" "$tmp/cb"
	echo "<id@example.invalid>" >"$tmp/state/sent/stable/x/v1/cover-msgid"
	expect_ok "distclean: says what it deletes and keeps the sent records" "keeping .*sent versions" \
		env BUILD="$tmp/cb" CACHE="$tmp/cache" STATE="$tmp/state" "$TOP/scripts/clean.sh" --cache
	check "distclean: the sent record is still there" test -s "$tmp/state/sent/stable/x/v1/cover-msgid"
	mkdir -p "$tmp/cb2"
	cp -a "$tmp/edit" "$tmp/cb2/tree"
	echo "/* more */" >>"$tmp/cb2/tree/arch/x86/kvm/hyperv.c"
	: >"$tmp/cb2/.kvm-hv-flush-build"
	expect_fail "clean: refuses to delete unexported work" "holds work that is not in patches" \
		env BUILD="$tmp/cb2" STATE="$tmp/state" "$TOP/scripts/clean.sh"
	expect_fail "clean: refuses a BUILD= it did not make" "not a build directory the harness made" \
		env BUILD="$tmp/mine" STATE="$tmp/state" "$TOP/scripts/clean.sh"

	# 4. Concurrency: a second command on the same build directory waits
	# for the first, or refuses at once with LOCK_WAIT=0.
	mkdir -p "$tmp/lk"
	(exec 8>>"$tmp/lk/.lock"; flock 8; echo "a test holder" >"$tmp/lk/.lock.who"; sleep 4) &
	local holder=$!
	sleep 1
	expect_fail "concurrency: LOCK_WAIT=0 refuses" "in use by a test holder" \
		env -u KVM_HV_LOCKED BUILD="$tmp/lk" TREE="$tmp/edit" LOCK_WAIT=0 "$TOP/scripts/export.sh" "$tmp/x"
	expect_ok "concurrency: a second command waits" "waiting for a test holder" \
		env -u KVM_HV_LOCKED BUILD="$tmp/lk" TREE="$tmp/edit" "$TOP/scripts/export.sh" "$tmp/x"
	wait "$holder" || true
	# Two tree builds at once into one build directory: both succeed, one tree.
	local -a env3=(env -u KVM_HV_LOCKED TREE="$tmp/lk/tree" PATCHES="$PATCHES" BUILD="$tmp/lk" TREE_SPARSE=1)
	"${env3[@]}" "$TOP/scripts/tree.sh" >"$tmp/c1.log" 2>&1 &
	local c1=$! rc1=0 rc2=0
	"${env3[@]}" "$TOP/scripts/tree.sh" >"$tmp/c2.log" 2>&1 || rc2=$?
	wait "$c1" || rc1=$?
	check "concurrency: two 'make tree' at once both succeed ($rc1, $rc2)" test "$rc1" -eq 0 -a "$rc2" -eq 0
	check "concurrency: one of them waited" grep -q "waiting for" "$tmp/c1.log" "$tmp/c2.log"
	check "concurrency: one good tree, no leftovers" bash -c \
		"[ \$(git -C '$tmp/lk/tree' rev-list --count $BASE_TAG..HEAD) -gt 0 ] && ! compgen -G '$tmp/lk/tree.*'"

	# 5. Interrupts.
	do_interrupts
}

# Ctrl-C (SIGINT to the foreground process group) and SIGTERM to the
# script while QEMU runs leave no QEMU behind.
do_interrupts() {
	interrupt_test INT make
	interrupt_test TERM script
}

# interrupt_test SIGNAL make|script: start 'make selftests' as a shell
# starts a foreground job (a process group of its own, SIGINT not
# ignored: a background job of a script would ignore it), wait for QEMU,
# send SIGNAL to the whole group (as Ctrl-C does) or to selftests.sh
# alone, then require the run to end within 20 s leaving no QEMU of it
# (the guest idles for 300 s first, so QEMU cannot just have finished).
interrupt_test() {
	local sig=$1 target=$2 tmp pg q=0 i gone=0 pat
	scratch
	tmp=$SCR
	mkdir -p "$tmp/tmp"
	pat="qemu-system-x86_64.*-pidfile $tmp/tmp/"
	python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGQUIT, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' env TMPDIR="$tmp/tmp" GUEST_SLEEP=300 \
		make -C "$TOP" selftests TESTS=hyperv_tlb_flush_ranges >"$tmp/log" 2>&1 &
	pg=$!
	for ((i = 0; i < 400; i++)); do
		pgrep -f "$pat" >/dev/null && { q=1; break; }
		kill -0 "$pg" 2>/dev/null || break
		sleep 0.5
	done
	if [ "$q" = 0 ]; then
		bad "interrupt (SIG$sig): QEMU never started"
		tail -n 10 "$tmp/log" | sed 's/^/    /'
		kill -TERM -- "-$pg" 2>/dev/null || true
		return
	fi
	sleep 3
	if [ "$target" = make ]; then
		kill -"$sig" -- "-$pg"
	else
		# The script itself (the oldest), not its subshells.
		pkill -o -"$sig" -g "$pg" -f "scripts/selftests.sh"
	fi
	for ((i = 0; i < 40; i++)); do
		if ! kill -0 "$pg" 2>/dev/null && ! pgrep -f "$pat" >/dev/null; then
			gone=1
			break
		fi
		sleep 0.5
	done
	if pgrep -f "$pat" >/dev/null; then
		bad "interrupt: SIG$sig to $target left QEMU running: $(pgrep -af "$pat" | cut -c1-60)"
		pkill -KILL -f "$pat" || true
	elif [ "$gone" = 0 ]; then
		bad "interrupt: SIG$sig to $target: 'make selftests' still running after 20 s"
	else
		ok "interrupt: SIG$sig to $target during 'make selftests' stopped it and its QEMU ($(grep -m1 -E 'stopping QEMU' "$tmp/log" || echo 'no message'))"
	fi
	kill -KILL -- "-$pg" 2>/dev/null || true
	wait "$pg" 2>/dev/null || true
}

# --- README, run as written ------------------------------------------------------
# The blocks after a '<!-- test: NAME -->' line, each run in a scratch
# copy of the project, with HOME a scratch directory holding ~/linux (a
# clone of the base, as a user's kernel tree) and EDITOR a script that
# makes an edit.  'make' and 'make check' themselves are run by make check's
# 'make' stage and by CI.
do_readme() {
	base_env
	local tmp blocks
	scratch
	tmp=$SCR
	mapfile -t blocks < <(sed -n 's/^<!-- test: \([a-z-]*\) -->$/\1/p' "$TOP/README.md")
	[ ${#blocks[@]} -ge 2 ] || { bad "README: fewer than two tested blocks"; return; }
	mkdir -p "$tmp/home"
	msg "making ~/linux: a clone of the base as a user's kernel tree"
	git clone -q --shared "$BASE_REPO" "$tmp/home/linux"
	cat >"$tmp/editor" <<'EOT'
#!/bin/sh
# The README's $EDITOR: a small change to the file it is given.
printf '/* edited by the README test */\n' >>"$1"
EOT
	chmod +x "$tmp/editor"
	# A user's identity, as 'make send' needs one.
	printf '[user]\n\tname = README Test\n\temail = readme-test@example.org\n' >"$tmp/home/.gitconfig"
	local b script rc bt
	for b in "${blocks[@]}"; do
		script=$tmp/$b.sh
		awk -v b="<!-- test: $b -->" '$0 == b { f = 1; next } f && /^```sh$/ { p = 1; next } p && /^```$/ { exit } p { print }' \
			"$TOP/README.md" >"$script"
		[ -s "$script" ] || { bad "README block '$b': empty"; continue; }
		# Each block in a project of its own, as a new user has it.
		rsync -a --exclude=/build/ --exclude='/build-*/' "$TOP/" "$tmp/$b/"
		msg "README block '$b' in a fresh copy of the project:"
		sed 's/^/    $ /' "$script" >&2
		rc=0 bt=$(date +%s)
		# A new user's shell: no BUILD, TREE, KSRC or SERIES of the caller's.
		(cd "$tmp/$b" && env -u KVM_HV_LOCKED -u BUILD -u TREE -u KSRC -u SERIES HOME="$tmp/home" EDITOR="$tmp/editor" \
			CACHE="$CACHE" STATE="$tmp/state" bash -euo pipefail "$script") >"$tmp/$b.log" 2>&1 || rc=$?
		# What each block must show besides succeeding.
		local want=
		case $b in
		edit-and-test) want="testing build/tree as it is.*uncommitted changes in arch/x86/kvm/hyperv.c" ;;
		own-tree) want="testing build/tree = patches/.* of $tmp/home/linux" ;;
		esac
		if [ "$rc" -eq 0 ] && [ -n "$want" ] && ! grep -qE -- "$want" "$tmp/$b.log"; then
			bad "README block '$b' ran, but its output lacks /$want/"
		elif [ "$rc" -eq 0 ]; then
			ok "README block '$b' ($(grep -c . "$script") lines) ran as written in $(($(date +%s) - bt)) s: $(grep -m1 -oE -- "${want:-==> .*}" "$tmp/$b.log" | tail -n 1)"
		else
			bad "README block '$b' failed (exit $rc):"
			tail -n 25 "$tmp/$b.log" | sed 's/^/    /'
		fi
		grep -E '^==> (testing|tree|smoke|all|KUnit|suite|lint)|^(PASS|FAIL) ' "$tmp/$b.log" | sed 's/^/    /' || true
	done
}

# --- injected faults -------------------------------------------------------------
# fault NAME STAGE WHY VAR=VALUE...: 'make check' with STAGES including
# STAGE and the fault injected through the environment must FAIL that
# stage, for the injected reason (the stage's log says WHY), and exit
# non-zero.
fault() {
	local name=$1 stage=$2 why=$3 log rc=0 slog t
	shift 3
	log=$FT/$(tr ' /' '__' <<<"$name").log
	t=$(date +%s)
	env -u KVM_HV_LOCKED "$@" "$TOP/scripts/check.sh" >"$log" 2>&1 || rc=$?
	msg "fault '$name' took $(($(date +%s) - t)) s"
	slog=$(sed -nE "s/^FAIL +$stage .*log: (.*)\)$/\1/p" "$log")
	[ -z "$slog" ] || [[ $slog == /* ]] || slog=$TOP/$slog
	if [ "$rc" -ne 0 ] && [ -n "$slog" ] && grep -qE -- "$why" "$slog"; then
		ok "fault '$name': stage $stage FAILED ($(grep -m1 -oE -- "$why" "$slog")), make check exited $rc ($(tail -n1 "$log"))"
	elif [ "$rc" -ne 0 ] && [ -n "$slog" ]; then
		bad "fault '$name': stage $stage failed, but not for the injected reason (/$why/ not in $slog)"
		tail -n 15 "$slog" | sed 's/^/    /'
	else
		bad "fault '$name': stage $stage did not fail (exit $rc)"
		tail -n 15 "$log" | sed 's/^/    /'
	fi
}

do_faults() {
	base_env
	tree_require
	scratch
	FT=$SCR
	local p
	copy_patches() { rm -rf "${FT:?}/$1"; mkdir -p "$FT/$1"; cp "$PATCHES"/*.patch "$FT/$1/"; }
	local -a sparse=(TREE_SPARSE=1 LOCK_WAIT=600)

	# A patch that does not apply.
	copy_patches broken
	p=$(find "$FT/broken" -name '0003-*.patch')
	sed -i '0,/^-[^-]/s/^-\([^-]\)/-XX\1/' "$p"
	fault "broken patch" tree "0003-.*does not apply" STAGES=tree BUILD="$FT/b1" PATCHES="$FT/broken" "${sparse[@]}"

	# A series that applies but does not export to itself: a header
	# git am drops.
	copy_patches differ
	p=$(find "$FT/differ" -name '0002-*.patch')
	sed -i '0,/^Subject: /s/^Subject: /X-Injected: not exported\nSubject: /' "$p"
	fault "differing export" roundtrip "X-Injected" STAGES="tree roundtrip" BUILD="$FT/b2" PATCHES="$FT/differ" "${sparse[@]}"

	# A checkpatch warning: trailing whitespace on a line the series adds.
	# (checkpatch wants a whole tree, so this one is not sparse.)
	copy_patches style
	p=$(find "$FT/style" -name '0005-*.patch')
	sed -i '0,/^+\t[a-z].*;$/s/^\(+\t[a-z].*;\)$/\1   /' "$p"
	fault "checkpatch warning" lint "trailing whitespace" STAGES="tree lint" LINT_CHECKS=checkpatch \
		BUILD="$FT/b3" PATCHES="$FT/style" LOCK_WAIT=600

	# A mutant the suite cannot kill: it changes only a comment.
	mkdir -p "$FT/mutants"
	local line
	line=$(grep -n -m1 '^ \*' "$TREE/arch/x86/kvm/hyperv.c" | cut -d: -f1)
	{
		echo "Mutant: an equivalent mutant (a comment), which no test can kill"
		(cd "$TREE" && sed "${line}s|\$| (mutated)|" arch/x86/kvm/hyperv.c |
			diff -u --label a/arch/x86/kvm/hyperv.c --label b/arch/x86/kvm/hyperv.c arch/x86/kvm/hyperv.c -) || true
	} >"$FT/mutants/99-equivalent.patch"
	fault "surviving mutant" mutants "SURVIVED 99-equivalent" STAGES=mutants MUTANTS_DIR="$FT/mutants" TREE="$TREE" BUILD="$FT/b4" LOCK_WAIT=600

	# A selftest that fails: the "patched" modules are Debian's stock ones,
	# which the new selftest must catch.
	mkdir -p "$FT/stock"
	local m
	for m in kvm kvm-amd kvm-intel; do
		xz -dc "$STOCK_MODDIR/kernel/arch/x86/kvm/$m.ko.xz" >"$FT/stock/$m.ko"
	done
	fault "failing selftest" selftests "hyperv_tlb_flush_ranges: not ok" STAGES=selftests TESTS=hyperv_tlb_flush_ranges \
		PATCHED_MODS_DIR="$FT/stock" TREE="$TREE" BUILD="$FT/b5" SELFTESTS_OBJ_ROOT="$BUILD/selftests" LOCK_WAIT=600

	# No oracle: the flush kprobe cannot be placed.  The new selftest must
	# fail, saying so, and never pass as skipped.
	fault "no oracle" selftests "oracle unavailable" STAGES=selftests TESTS=hyperv_tlb_flush_ranges \
		TEST_ENV=HV_FLUSH_PROBE_FUNC=bogus_flush_fn PATCHED_MODS_DIR="$BUILD/modules/patched" \
		TREE="$TREE" BUILD="$FT/b5" SELFTESTS_OBJ_ROOT="$BUILD/selftests" LOCK_WAIT=600

	# make install puts Debian's stock modules under updates/: the guest's
	# modprobe loads them, and the install stage must see that they are not
	# the patched build (build IDs) and that the selftest fails on them.
	mkdir -p "$FT/b5/modules/patched"
	cp "$BUILD"/modules/patched/kvm*.ko "$FT/b5/modules/patched/"
	fault "stock modules installed" install "build ID [0-9a-f]+, not the patched kvm.ko" STAGES=install \
		PATCHED_MODS_DIR="$FT/stock" TREE="$TREE" BUILD="$FT/b5" SELFTESTS_OBJ_ROOT="$BUILD/selftests" LOCK_WAIT=600

	# A flush-path mutant the selftest cannot kill: a comment again.
	mkdir -p "$FT/flush-mutants"
	line=$(grep -n -m1 'Work around possible WS2012 bug' "$TREE/arch/x86/kvm/hyperv.c" | cut -d: -f1)
	{
		echo "Mutant: an equivalent flush-path mutant (a comment), which no test can kill"
		(cd "$TREE" && sed "${line}s|\$| (mutated)|" arch/x86/kvm/hyperv.c |
			diff -u --label a/arch/x86/kvm/hyperv.c --label b/arch/x86/kvm/hyperv.c arch/x86/kvm/hyperv.c -) || true
	} >"$FT/flush-mutants/99-equivalent.patch"
	fault "surviving flush-path mutant" selftest-mutants "SURVIVED 99-equivalent" STAGES=selftest-mutants \
		FLUSH_MUTANTS_DIR="$FT/flush-mutants" TREE="$TREE" BUILD="$FT/b5" SELFTESTS_OBJ_ROOT="$BUILD/selftests" LOCK_WAIT=600

	# A use-after-free on the PV TLB flush path, as a scratch change of the
	# debug kernel's mirror (never the tree): KASAN must report it and the
	# debug stage must show the report.  It rebuilds the debug kernel
	# incrementally, so it runs where the debug stage (or make debug) built
	# that kernel once; a first build here would take most of an hour.
	if [ -f "$CACHE/debug/stable/build/vmlinux" ]; then
		fault "use-after-free" debug "BUG: (KASAN|KFENCE): [a-z-]*use-after-free" STAGES=debug \
			DEBUG_PATCH="$TOP/faults/use-after-free.patch" DEBUG_TESTS=hyperv_tlb_flush_ranges \
			FUZZ_ROUNDS=0 TREE="$TREE" BUILD="$FT/b7" LOCK_WAIT=1800
	else
		echo "# fault 'use-after-free' NOT run: no debug kernel in $CACHE/debug/stable/build yet ('make debug' or the debug stage builds it)"
	fi

	# A send that fails: nothing listens on the SMTP port.
	fault "failing send" send "git send-email failed" STAGES=send TEST_SEND_SMTP_PORT=1 TREE="$TREE" BUILD="$FT/b6" LOCK_WAIT=600
}

# --- the mainline series ---------------------------------------------------------
# The tests-and-docs series on the Linux 7.1.3 tarball: git am, the export
# round trip, lint (checkpatch, MAINTAINERS coverage, per-patch W=1 build,
# kernel-doc, Sphinx) and the send test.  Exits 4 (skipped, and says so)
# without the tarball.
do_mainline() {
	local tarball=${MAINLINE_TARBALL:-$TOP/../shared/linux-7.1.3.tar.xz} step
	if [ ! -f "$tarball" ]; then
		echo "SKIP mainline: no Linux 7.1.3 tarball at $tarball (MAINLINE_TARBALL=); the mainline series was NOT tested"
		exit 4
	fi
	[ -d "$TOP/patches/mainline" ] || { bad "mainline: no patches/mainline"; return; }
	local -a m=(env -u TREE -u PATCHES SERIES=mainline MAINLINE_TARBALL="$tarball")
	for step in tree.sh "test-harness.sh roundtrip" lint.sh test-send.sh; do
		# shellcheck disable=SC2086 # the step's arguments
		if "${m[@]}" "$TOP"/scripts/$step; then
			ok "mainline: $step"
		else
			bad "mainline: $step"
			return
		fi
	done
}

case "${1:-}" in
shellcheck) do_shellcheck ;;
cc-cache) do_cc_cache ;;
mainline) do_mainline ;;
roundtrip) do_roundtrip ;;
errors) do_errors ;;
flows) do_flows ;;
interrupts) do_interrupts ;;
readme) do_readme ;;
faults) do_faults ;;
*) die "usage: $0 shellcheck|cc-cache|roundtrip|errors|flows|interrupts|readme|faults|mainline" ;;
esac
[ "$fails" -eq 0 ] || die "$fails harness test(s) failed"
