#!/bin/sh
# funclen.sh - no function in the given C files is longer than MAX lines.
#
#   tests/funclen.sh [-m MAX] FILE...
#
# KNF makes a function easy to find without parsing C: its body runs
# from a `{` in column 0 to the next `}` in column 0, and its name is the
# last line before that starts in column 0 with an identifier followed
# by `(`.  The length counted is the body's lines between the two braces.
# Prints "file:line: name: N lines (most MAX)" for each function over
# MAX (default 120) and exits 1 if there was one, 0 if not, 2 on a usage
# error or an unreadable file.
max=120
if [ "$1" = "-m" ]; then
	max=$2
	shift 2
fi
case $max in
''|*[!0-9]*)
	echo "usage: funclen.sh [-m MAX] FILE..." >&2
	exit 2;;
esac
if [ $# -eq 0 ]; then
	echo "usage: funclen.sh [-m MAX] FILE..." >&2
	exit 2
fi
for f in "$@"; do
	if [ ! -r "$f" ]; then
		echo "funclen.sh: $f: cannot read" >&2
		exit 2
	fi
done
exec awk -v max="$max" '
FNR == 1 { name = "?"; start = 0 }
/^[A-Za-z_][A-Za-z0-9_]*\(/ && !start {
	name = $0
	sub(/\(.*/, "", name)
}
/^\{/ { start = FNR; line = FNR; next }
/^\}/ && start {
	n = FNR - start - 1
	if (n > max) {
		printf("%s:%d: %s: %d lines (most %d)\n", FILENAME, line,
		    name, n, max)
		bad = 1
	}
	start = 0
}
END { exit (bad ? 1 : 0) }
' "$@"
