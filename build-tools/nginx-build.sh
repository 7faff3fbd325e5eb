#!/usr/bin/env bash
# Configure and build an nginx source tree with the module, for the nginx
# the module is to load into.  The Makefile calls it; see docs/install.md.
#
#   nginx-build.sh module SRC TREE   configure a copy of SRC in TREE (once,
#                                    again when the flags or `config` change)
#                                    and build only the module:
#                                    TREE/objs/ngx_http_sse_module.so
#   nginx-build.sh nginx SRC TREE    the same, and nginx itself too:
#                                    TREE/objs/nginx (for tests; it runs
#                                    uninstalled with -p <dir>)
#   nginx-build.sh flags SRC TREE    print the configure arguments, one a line
#   nginx-build.sh version SRC       print SRC's nginx version
#
# SRC is either Debian's nginx-dev tree (/usr/share/nginx/src: it has
# conf_flags, the arguments Debian's nginx was configured with) or an nginx
# source tree (a release tarball, ./configure; or a repository checkout,
# auto/configure).
#
# Environment:
#   NGINX_BIN        the installed nginx whose `nginx -V` gives the compiler
#                    and linker flags for the Debian tree (default
#                    /usr/sbin/nginx)
#   NGINX_CONFIGURE  for an upstream tree: the configure arguments of the
#                    nginx the module is for, as `nginx -V` prints them
#                    (shell-quoted); default: --with-compat with SSL, HTTP/2,
#                    HTTP/3 (nginx >= 1.25), realip and threads
#   NGX_CC_OPT, NGX_LD_OPT   compiler/linker options when NGINX_CONFIGURE
#                    gives none (default: Debian 12's hardening flags, the
#                    ones its nginx is built with)
#   JOBS             parallel make jobs (default 2)
#
# Flags: the module is compiled with the same --with-cc-opt/--with-ld-opt as
# the nginx binary it loads into (optimisation -O2, -fstack-protector-strong,
# -D_FORTIFY_SOURCE=2, -fPIC, full RELRO with BIND_NOW), never with nginx's
# bare default (-O).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
JOBS=${JOBS:-2}

# Debian 12's dpkg-buildflags for nginx (what `nginx -V` of its package shows,
# without the build-path map).
DEFAULT_CC_OPT='-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2'
DEFAULT_LD_OPT='-Wl,-z,relro -Wl,-z,now -fPIC'

die() { echo "nginx-build.sh: $*" >&2; exit 1; }

nginx_version() {  # SRC
    sed -n 's/^#define NGINX_VERSION *"\([0-9.]*\)".*/\1/p' "$1/src/core/nginx.h"
}

# version as a number: 1.25.3 -> 1025003
version_number() {
    local IFS=. v
    read -r -a v <<< "$1"
    echo $(( v[0] * 1000000 + v[1] * 1000 + ${v[2]:-0} ))
}

# The --with-cc-opt / --with-ld-opt values an installed nginx was built with.
installed_opt() {  # NAME (cc-opt|ld-opt)
    local name=$1 args a
    args=$("$NGINX_BIN" -V 2>&1 | sed -n 's/^configure arguments: //p') || true
    eval "set -- $args"
    for a in "$@"; do
        case $a in --with-$name=*) echo "${a#--with-"$name"=}"; return ;; esac
    done
}

# Paths an uninstalled test binary must not point at /etc or /var.
local_paths() {  # TREE
    cat <<EOF
--prefix=$1/prefix
--conf-path=conf/nginx.conf
--error-log-path=stderr
--http-log-path=logs/access.log
--pid-path=logs/nginx.pid
--lock-path=logs/nginx.lock
--modules-path=modules
--http-client-body-temp-path=client_body_temp
--http-fastcgi-temp-path=fastcgi_temp
--http-proxy-temp-path=proxy_temp
--http-scgi-temp-path=scgi_temp
--http-uwsgi-temp-path=uwsgi_temp
EOF
}

is_path_flag() {
    case $1 in
        --prefix=*|--conf-path=*|--http-log-path=*|--error-log-path=*|\
        --lock-path=*|--pid-path=*|--modules-path=*|--http-*-temp-path=*|\
        --sbin-path=*) return 0 ;;
    esac
    return 1
}

# Configure arguments, one a line.  What makes a module load into a binary:
# the same version and the same module signature, which --with-compat fixes
# whatever optional modules either side has; other modules' own options
# (=dynamic ones, --add-module) need their sources and libraries and do not
# change the ABI, so they are left out.
conf_flags() {  # SRC TREE
    local src=$1 tree=$2 cc_opt ld_opt a compat=0
    local -a args=() out=()

    if [ -f "$src/conf_flags" ]; then
        # Debian's nginx-dev: the exact arguments of the packaged binary,
        # and the compiler flags from the installed binary itself.
        # shellcheck disable=SC1091
        source "$src/conf_flags"
        args=("${NGX_CONF_FLAGS[@]}")
        cc_opt=$(installed_opt cc-opt)
        ld_opt=$(installed_opt ld-opt)
    elif [ -n "${NGINX_CONFIGURE:-}" ]; then
        eval "args=($NGINX_CONFIGURE)"
    else
        # realip: as nginx.org's packages have it (t/643 needs it)
        args=(--with-compat --with-threads --with-http_ssl_module
              --with-http_v2_module --with-http_realip_module)
        if [ "$(version_number "$(nginx_version "$src")")" -ge 1025000 ]; then
            args+=(--with-http_v3_module)
        fi
    fi

    for a in "${args[@]}"; do
        case $a in
            --with-cc-opt=*) cc_opt=${a#--with-cc-opt=} ;;
            --with-ld-opt=*) ld_opt=${a#--with-ld-opt=} ;;
            --with-compat) compat=1; out+=("$a") ;;
            --add-module=*|--add-dynamic-module=*|--with-*=dynamic) ;;
            *) if [ ! -f "$src/conf_flags" ] && is_path_flag "$a"; then
                   :   # an upstream tree is built to test: local paths below
               else
                   out+=("$a")
               fi ;;
        esac
    done
    [ "$compat" = 1 ] || out+=(--with-compat)
    if [ ! -f "$src/conf_flags" ]; then
        mapfile -t -O "${#out[@]}" out < <(local_paths "$tree")
    fi

    out+=(--with-cc-opt="${cc_opt:-${NGX_CC_OPT:-$DEFAULT_CC_OPT}}")
    out+=(--with-ld-opt="${ld_opt:-${NGX_LD_OPT:-$DEFAULT_LD_OPT}}")
    out+=(--add-dynamic-module="$ROOT")
    printf '%s\n' "${out[@]}"
}

configure() {  # SRC TREE
    local src=$1 tree=$2 want script
    local -a flags
    [ -f "$src/src/core/nginx.h" ] || die "$src is not an nginx source tree"
    want=$( { conf_flags "$src" "$tree"; md5sum < "$ROOT/config"; } \
            | md5sum | cut -d' ' -f1)
    if [ -f "$tree/.configured" ] && [ "$(cat "$tree/.configured")" = "$want" ]
    then
        return
    fi
    rm -rf "$tree"
    mkdir -p "$(dirname "$tree")"
    cp -a "$src" "$tree"
    rm -rf "$tree/objs" "$tree/Makefile"
    if [ -x "$tree/configure" ]; then script=./configure
    elif [ -f "$tree/auto/configure" ]; then script=auto/configure
    else die "$src has neither configure nor auto/configure"
    fi
    mapfile -t flags < <(conf_flags "$src" "$tree")
    echo "configure nginx $(nginx_version "$src") in $tree (log: $tree/configure.log)"
    (cd "$tree" && sh "$script" "${flags[@]}") > "$tree/configure.log" 2>&1 ||
        { tail -30 "$tree/configure.log" >&2; die "configure failed"; }
    echo "$want" > "$tree/.configured"
}

cmd=${1:-}
case $cmd in
    module|nginx)
        [ $# = 3 ] || die "usage: $0 $cmd SRC TREE"
        configure "$2" "$3"
        if [ "$cmd" = nginx ]; then
            make -C "$3" -f objs/Makefile -j"$JOBS" binary modules
            mkdir -p "$3/prefix/logs" "$3/prefix/conf"
        else
            make -C "$3" -f objs/Makefile -j"$JOBS" modules
        fi ;;
    flags)   conf_flags "$2" "$3" ;;
    version) nginx_version "$2" ;;
    *) die "usage: $0 module|nginx|flags SRC TREE, or version SRC" ;;
esac
