#!/bin/sh
#
# layers.sh [DIR] - the include rule (HACKING): a file includes headers
# of its own layer or of a lower one, never of a higher one.  Layers, low
# to high: base (core/util, core/log), model (core/mail/), protocol (the
# rest of core/), storage (spool/), commands (cmd/).  Every violation is
# printed as "file:line: includes X (layer A above B)"; the exit status
# is 1 when there is one, 0 when there is none.  DIR: the source tree
# (default: the current directory).
#
cd "${1:-.}" || exit 2
files=$(ls core/*.[ch] core/mail/*.[ch] spool/*.[ch] cmd/*.[ch] \
    2>/dev/null)
[ -n "$files" ] || { echo "layers.sh: no sources in ${1:-.}" >&2; exit 2; }
# shellcheck disable=SC2086
awk '
function layer(path) {
	if (path ~ /^core\/(util|log)\.[ch]$/)
		return 0
	if (path ~ /^core\/mail\/[^\/]+\.[ch]$/)
		return 1
	if (path ~ /^core\/[^\/]+\.[ch]$/)
		return 2
	if (path ~ /^spool\/[^\/]+\.[ch]$/)
		return 3
	if (path ~ /^cmd\/[^\/]+\.[ch]$/)
		return 4
	return -1
}
BEGIN {
	name[0] = "base"; name[1] = "model"; name[2] = "protocol"
	name[3] = "storage"; name[4] = "commands"
	bad = 0
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
	hdr = $0
	sub(/^[^"]*"/, "", hdr)
	sub(/".*$/, "", hdr)
	from = layer(FILENAME)
	to = layer(hdr)
	if (from >= 0 && to > from) {
		printf "%s:%d: includes %s (layer %s above %s)\n", \
		    FILENAME, FNR, hdr, name[to], name[from]
		bad = 1
	}
}
END { exit bad }
' $files
