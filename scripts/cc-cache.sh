#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The CC of every kernel build here (debug.sh, kunit.sh, lint.sh), run
# from the copy that lib.sh's kcc_install puts in the cache:
# gcc through ccache, which lib.sh puts in depend mode.  Depend mode runs
# no preprocessor before a miss, so a cold kernel build costs what plain
# gcc does (default mode costs a quarter more), but it hashes only the
# files that gcc's -MD output names.  An .incbin is not among them, and
# so a source that pulls a file in with .incbin (piggy.S, which holds the
# compressed kernel of a bzImage; kernel/configs.c) goes to gcc directly:
# a cached object would hold an older blob.
set -euo pipefail
for a in "$@"; do
	case $a in
	*.c | *.S)
		if [ -f "$a" ] && grep -q '\.incbin' "$a"; then
			exec gcc "$@"
		fi
		;;
	esac
done
exec ccache gcc "$@"
