#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make clean: remove the build directory (build/, or BUILD= if the harness
# made it); make distclean: also the cache.  Says what it deletes.  The records of sent versions ($STATE)
# are kept: a v2 needs v1's Message-ID.  A build/tree with work that is
# not in patches/ is not deleted unless FORCE=1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

build=$BUILD
if [ -d "$build" ] && [ ! -e "$build/.kvm-hv-flush-build" ] && [ -n "$(ls -A "$build")" ]; then
	die "$build is not a build directory the harness made (no .kvm-hv-flush-build in it); not deleting it"
fi
harness_lock "$build"
for t in "$build"/tree "$build"/tree-*; do
	[ -d "$t/.git" ] || continue
	[ -z "$(TREE=$t tree_meta owner)" ] && continue
	d=$(TREE=$t PATCHES=$PATCHES tree_diff)
	if [ -n "$d" ] && [ -z "${FORCE:-}" ]; then
		die "${t#"$TOP"/} holds work that is not in patches/ ($(tr '\n' ' ' <<<"$d" | sed 's/ $//')); 'make export' keeps it, 'make clean FORCE=1' deletes it"
	fi
done
if [ -d "$build" ]; then
	msg "deleting ${build#"$TOP"/}/ ($(du -sh "$build" 2>/dev/null | cut -f1))"
	rm -rf "$build"
fi
if [ "${1:-}" = --cache ] && [ -d "$CACHE" ]; then
	harness_lock "$CACHE"
	msg "deleting the cache $CACHE ($(du -sh "$CACHE" 2>/dev/null | cut -f1): downloads, base, ccache, KUnit build)"
	rm -rf "$CACHE"
fi
[ -d "$STATE" ] && msg "keeping $STATE (the records of sent versions)"
exit 0
