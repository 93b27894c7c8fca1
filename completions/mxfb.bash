# bash completion for mxfb(1): commands, each command's options, queue
# IDs (from `mxfb status -j`) and relay domains (from the configuration).
# Works for `mxfb COMMAND` and the busybox-style `mxfb-COMMAND` links,
# without the bash-completion package.

# The -C FILE given on the line, if any.
_mxfb_config_arg()
{
	local i
	for ((i = 1; i + 1 < ${#COMP_WORDS[@]}; i++)); do
		if [[ ${COMP_WORDS[i]} == -C ]]; then
			printf '%s\n' "${COMP_WORDS[i + 1]}"
			return
		fi
	done
}

# The configuration file in effect: -C FILE, $MXFB_CONFIG, the default.
_mxfb_config()
{
	local conf
	conf=$(_mxfb_config_arg)
	printf '%s\n' "${conf:-${MXFB_CONFIG:-/etc/mxfb/mxfb.conf}}"
}

# Queue IDs, listed by the same mxfb the user is typing.
_mxfb_ids()
{
	local prog=${COMP_WORDS[0]} conf
	local -a copt=()
	case ${prog##*/} in
	mxfb-*) prog=${prog%-*} ;;
	esac
	conf=$(_mxfb_config_arg)
	[[ -n $conf ]] && copt=(-C "$conf")
	"$prog" "${copt[@]}" status -j 2>/dev/null |
	    sed -n 's/^{"id":"\([0-9A-Z]*\)".*/\1/p'
}

# The relay domains of the configuration.
_mxfb_domains()
{
	local conf
	conf=$(_mxfb_config)
	[[ -r $conf ]] || return
	awk '$1 == "relay-domain" { print $2 }' "$conf" 2>/dev/null
}

_mxfb()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= i=1 opts args=
	local commands="receive probe check flush bounce status inject hold release delete verify passwd"

	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()

	case ${COMP_WORDS[0]##*/} in
	mxfb-*)
		cmd=${COMP_WORDS[0]##*/}
		cmd=${cmd#mxfb-}
		;;
	*)
		# Global options before the command: -C FILE, -h, -V.
		while ((i < COMP_CWORD)); do
			case ${COMP_WORDS[i]} in
			-C) i=$((i + 2)) ;;
			-*) i=$((i + 1)) ;;
			*) cmd=${COMP_WORDS[i]}; break ;;
			esac
		done
		;;
	esac

	if [[ $prev == -C ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		return 0
	fi

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-C -h -V --help --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return 0
	fi

	case $cmd in
	receive)
		opts="-C -h -l -c -s -T"
		case $prev in
		-l|-c) return 0 ;;
		esac
		;;
	probe)
		opts="-C -h -q -F -t"
		args=domains
		[[ $prev == -t ]] && return 0
		;;
	check)
		opts="-C -h -j -t"
		args=domains
		[[ $prev == -t ]] && return 0
		;;
	flush)
		opts="-C -h -f -d"
		args=ids
		if [[ $prev == -d ]]; then
			COMPREPLY=($(compgen -W "$(_mxfb_domains)" -- "$cur"))
			return 0
		fi
		;;
	bounce)
		opts="-C -h -q"
		args=ids
		;;
	hold|release|delete)
		opts="-C -h"
		args=ids
		;;
	status)
		opts="-C -h -j -s -H -b -m -o"
		[[ $prev == -o ]] && { COMPREPLY=($(compgen -f -- "$cur")); return 0; }
		args=ids
		;;
	inject)
		opts="-C -h -f"
		[[ $prev == -f ]] && return 0
		;;
	passwd)
		opts="-C -h"
		;;
	verify)
		opts="-C -h -j -l -d -x"
		if [[ $prev == -d ]]; then
			COMPREPLY=($(compgen -W "$(_mxfb_domains)" -- "$cur"))
			return 0
		fi
		;;
	*)
		return 0
		;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif [[ $args == ids ]]; then
		COMPREPLY=($(compgen -W "$(_mxfb_ids)" -- "$cur"))
	elif [[ $args == domains ]]; then
		COMPREPLY=($(compgen -W "$(_mxfb_domains)" -- "$cur"))
	fi
	return 0
}

complete -F _mxfb mxfb mxfb-receive mxfb-probe mxfb-flush mxfb-bounce \
    mxfb-status mxfb-inject mxfb-hold mxfb-release mxfb-delete mxfb-verify \
    mxfb-passwd mxfb-check
