#!/bin/bash
# asan-build.sh -- the sanitizer tier's build steps (driven by mk/asan.mk).
#
#   asan-build.sh source    fetch and unpack Debian's nginx source
#                           (adds a deb-src entry and dpkg-dev if missing)
#   asan-build.sh nginx     configure and build nginx with ASan+UBSan
#                           -> $ASAN_DIR/nginx-bin
#   asan-build.sh module    (re)build only the module in that tree
#                           -> $ASAN_DIR/ngx_http_sse_module.so
#   asan-build.sh run-test T   run one test file, pinning sanitizer reports
#                           to it (prove --exec; see step_run_test)
#   asan-build.sh check-reports   fail, with a digest, if $ASAN_REPORTS has any
#
# Environment: ROOT (the module's repo), ASAN_DIR (default $ROOT/build/asan),
# JOBS (default 2).  Every step is idempotent and skips work already done.
set -euo pipefail

ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
ASAN_DIR=${ASAN_DIR:-$ROOT/build/asan}
JOBS=${JOBS:-2}
SRC_LINK=$ASAN_DIR/nginx-src         # -> the unpacked nginx-<version> tree
NGX_DEV_FLAGS=/usr/share/nginx/src/conf_flags
DEBSRC_FILE=/etc/apt/sources.list.d/debian-src.sources

# Compiler and linker flags of the whole tier (nginx core and the module).
#  -O1 -fno-omit-frame-pointer: usable stacks at a bearable speed.
#  -DNGX_DEBUG_PALLOC=1: ngx_palloc() gives every allocation its own malloc()
#   (the pool's "large" list) instead of carving it from a pool block, so
#   ASan sees overflows and use-after-free of pool memory.
#  -DNGX_DEBUG_MALLOC=1: ngx_slab fills freed shared memory with 0xA5, so a
#   use-after-free in a zone shows up as garbage (ASan cannot watch shared
#   memory carved by ngx_slab; nothing can, short of a different allocator).
#  -D_GLIBCXX_ASSERTIONS: libstdc++'s cheap checks (operator[] bounds,
#   front() of an empty container, ...) abort with a message; ASan's
#   handle_abort=1 turns that into a report with a stack.  ABI unchanged.
#  -Wl,-z,nodelete: dlclose() keeps the module mapped.  A worker unloads it
#   when it destroys its cycle at exit, just before LeakSanitizer runs:
#   without this the module's frames in leak reports are "<unknown module>".
#   (nginx never unloads a module it still uses, so nothing else changes.)
#  san-policy.o: see write_policy below; linked into nginx (and, because
#   nginx passes --with-ld-opt to module links too, into the module, where
#   it is inert: the executable's definitions win).
SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer"
CC_OPT="$SAN_FLAGS -O1 -g -DNGX_DEBUG_PALLOC=1 -DNGX_DEBUG_MALLOC=1 -D_GLIBCXX_ASSERTIONS"
POLICY_O=$ASAN_DIR/san-policy.o
LD_OPT="$SAN_FLAGS -Wl,-z,nodelete $POLICY_O"

log() { printf 'asan: %s\n' "$*" >&2; }
die() { printf 'asan: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else die "need root for: $*"; fi
}

# --- source ---------------------------------------------------------------

# What this tier needs from Debian: dpkg-dev (apt-get source), nginx-dev
# (conf_flags), a compiler with the sanitizer runtimes, nginx's build
# dependencies for the configure flags used, curl and perl for the tests.
PACKAGES="dpkg-dev nginx-dev gcc g++ make libasan8 libubsan1 libssl-dev
          libpcre2-dev zlib1g-dev curl perl"

ensure_packages() {
    local p missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    log "installing:$missing"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq \
        --no-install-recommends $missing >/dev/null
}

have_debsrc() {
    # any deb-src entry (one-line or deb822 format) for bookworm
    grep -rqsE '^[[:space:]]*deb-src[[:space:]].*bookworm' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # a stanza whose Types include deb-src and whose Suites name bookworm
        awk 'BEGIN{RS=""; IGNORECASE=1}
             /(^|\n)Types:[^\n]*deb-src/ && /(^|\n)Suites:[^\n]*bookworm/ {f=1}
             END{exit !f}' "$f" && return 0
    done
    return 1
}

step_source() {
    if [ -f "$ASAN_DIR/.source-unpacked" ] && [ -d "$SRC_LINK/src/core" ]; then
        return 0
    fi
    mkdir -p "$ASAN_DIR"

    ensure_packages
    local updated=0
    if ! have_debsrc; then
        log "adding $DEBSRC_FILE (deb-src for bookworm)"
        as_root tee "$DEBSRC_FILE" >/dev/null <<'SOURCES'
# Added by ngx_http_sse_module's sanitizer tier (build-tools/asan-build.sh):
# `apt-get source nginx` needs a deb-src entry.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        as_root apt-get update -qq
        updated=1
    fi
    if ! apt-cache showsrc nginx >/dev/null 2>&1 ||
       [ -z "$(apt-cache showsrc nginx 2>/dev/null)" ]; then
        [ $updated = 1 ] || as_root apt-get update -qq
    fi

    # The source of the very nginx that is installed, if the archive still
    # has it; otherwise the newest one apt knows.
    local ver dir
    ver=$(dpkg-query -W -f='${Version}' nginx 2>/dev/null || true)
    (
        cd "$ASAN_DIR"
        rm -rf nginx-[0-9]*/
        if [ -n "$ver" ] && apt-get source -qq "nginx=$ver" >source.log 2>&1; then
            :
        elif apt-get source -qq nginx >>source.log 2>&1; then
            log "nginx=${ver:-?} not available as source, took the newest"
        else
            # A mirror may lag behind a security update: the Debian part
            # (.dsc, .debian.tar.xz) of the installed version 404s while
            # the upstream tarball, shared by every 1.22.1 revision, is
            # there.  Debian's patches do not matter to what this tier
            # checks (the module's memory safety), so build upstream's.
            log "Debian's nginx source is incomplete on this mirror;" \
                "taking the upstream tarball"
            rm -rf nginx-[0-9]*/
            apt-get source -qq --download-only "nginx${ver:+=$ver}" \
                >>source.log 2>&1 || true
            orig=$(ls nginx_*.orig.tar.gz 2>/dev/null | head -1)
            [ -n "$orig" ] || { tail -20 source.log >&2; exit 1; }
            tar xzf "$orig" || exit 1
        fi
    )
    dir=$(cd "$ASAN_DIR" && ls -d nginx-[0-9]*/ | head -1)
    [ -n "$dir" ] && [ -d "$ASAN_DIR/$dir/src/core" ] ||
        die "apt-get source nginx gave no source tree (see $ASAN_DIR/source.log)"
    ln -sfn "${dir%/}" "$SRC_LINK"
    echo "${dir%/}" > "$ASAN_DIR/.source-unpacked"
    log "nginx source in $ASAN_DIR/${dir%/}"
}

# --- sanitizer policy object and suppressions ---------------------------------

# A small object linked into the ASan nginx.  It does two things the
# sanitizer runtimes cannot be told through the environment with GCC:
#
#  1. UBSan reports honour UBSAN_OPTIONS=log_path.  GCC links ASan and UBSan
#     as two shared runtimes (libasan.so, libubsan.so), each with a private
#     copy of sanitizer_common.  libubsan's init calls the exported
#     __sanitizer_set_report_path, which binds to libasan's copy, so UBSan's
#     own reports stay on stderr whatever log_path says.  The constructor
#     below calls libubsan's own copy (dlsym on its handle) with the path
#     plus ".ubsan" (two runtimes writing one file truncate each other).
#
#  2. LeakSanitizer checks nginx worker processes only.  nginx never frees
#     the init cycle in `nginx -t` / `nginx -s` processes nor every old
#     cycle in the master after a reload: those exit with LSan reports and
#     exit code 1 on a clean build.  A worker, by contrast, destroys its
#     cycle pool before exit(), so what LSan finds there is a real leak
#     (e.g. a module's per-worker object not released in exit_process).
#     LSan asks __lsan_is_turned_off() at exit; we answer per process type
#     (ngx_process, a weak reference: configure's test programs link this
#     object too and have no nginx in them).
write_policy() {
    mkdir -p "$ASAN_DIR"
    cat > "$ASAN_DIR/san-policy.c.new" <<'POLICY'
/* Generated by build-tools/asan-build.sh: see the comments there. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

extern unsigned long  ngx_process __attribute__((weak));    /* ngx_uint_t */

#define SAN_NGX_PROCESS_WORKER  3

int
__lsan_is_turned_off(void)
{
    if (&ngx_process == NULL) {
        return 0;
    }

    return ngx_process != SAN_NGX_PROCESS_WORKER;
}

__attribute__((constructor)) static void
san_policy_ubsan_log_path(void)
{
    char         path[4096];
    void        *h;
    size_t       n;
    const char  *o, *p, *v;
    void       (*set)(const char *);

    o = getenv("UBSAN_OPTIONS");
    if (o == NULL) {
        return;
    }

    for (p = o; (p = strstr(p, "log_path=")) != NULL; p++) {
        if (p == o || strchr(": ,\t", p[-1]) != NULL) {
            break;
        }
    }

    if (p == NULL) {
        return;
    }

    v = p + sizeof("log_path=") - 1;
    n = strcspn(v, ": ,\t");
    if (n == 0 || n >= sizeof(path)) {
        return;
    }

    /*
     * A name of its own: libasan writes "<log_path>.<pid>" through its own
     * file descriptor, and both runtimes truncate the file when they open
     * it, so sharing the name loses a report.  UBSan's go to
     * "<log_path>.ubsan.<pid>".
     */
    if (n + sizeof(".ubsan") > sizeof(path)) {
        return;
    }

    memcpy(path, v, n);
    memcpy(path + n, ".ubsan", sizeof(".ubsan"));

    h = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (h == NULL) {
        return;
    }

    set = (void (*)(const char *)) dlsym(h, "__sanitizer_set_report_path");
    if (set != NULL) {
        set(path);
    }
}
POLICY
    if ! cmp -s "$ASAN_DIR/san-policy.c.new" "$ASAN_DIR/san-policy.c" ||
       [ ! -f "$POLICY_O" ]; then
        mv -f "$ASAN_DIR/san-policy.c.new" "$ASAN_DIR/san-policy.c"
        cc -O1 -g -fPIC -Wall -Werror -c "$ASAN_DIR/san-policy.c" -o "$POLICY_O"
        # relink whatever was linked with the old object
        rm -f "$SRC_LINK/objs/nginx" "$SRC_LINK"/objs/*.so
    else
        rm -f "$ASAN_DIR/san-policy.c.new"
    fi

    # ASan: nginx's dynamic module ABI has every module .so define
    # ngx_modules, ngx_module_names and ngx_module_order (nginx dlsym()s
    # them from the handle), and the executable has its own: an "ODR
    # violation" by design.  Other duplicate globals are still reported.
    cat > "$ASAN_DIR/asan.supp" <<'SUPP'
odr_violation:^ngx_modules$
odr_violation:^ngx_module_names$
odr_violation:^ngx_module_order$
SUPP

    # LeakSanitizer (LSAN_OPTIONS=suppressions=...): nginx 1.22's
    # ngx_regex_module_init() drops its PCRE2 compile context
    # (ngx_regex_compile_context = NULL, without pcre2_compile_context_free),
    # so every worker of a config with a regex leaks those 72 bytes.  Only
    # memory allocated from inside libpcre2 is matched: regexes compiled
    # through ngx_regex_compile() live in pools and never leak this way.
    cat > "$ASAN_DIR/lsan.supp" <<'SUPP'
leak:libpcre2-8.so
SUPP

    # UBSan findings that are nginx core's by design, not ours (passed as
    # UBSAN_OPTIONS=suppressions=...).  Keep this list short and specific:
    # a suppression hides the same finding in the module too.
    #  - alignment: with NGX_HAVE_NONALIGNED (x86) nginx core reads and writes
    #    integers at odd addresses on purpose (HTTP/2 frames, the request
    #    parser).  "^src/" matches nginx's own files only: they are compiled
    #    by relative path, the module's by absolute path, so misaligned
    #    access in the module is still reported.
    #  - nonnull-attribute: memcpy(dst, NULL, 0) of empty ngx_str_t's in
    #    ngx_string.c: ngx_pstrdup (every start: the empty conf_param) and
    #    ngx_sprintf_str (%V of an empty string in debug logging).
    # Both match by file name, never by function: matching a function name
    # makes libubsan symbolize, and its symbolizer, once used, never learns
    # of modules dlopen()ed later (its dlopen hook lives in libasan), so the
    # module's frames in later UBSan reports would stay raw addresses.
    cat > "$ASAN_DIR/ubsan.supp" <<'SUPP'
alignment:^src/
nonnull-attribute:^src/core/ngx_string.c$
SUPP
}

# --- configure --------------------------------------------------------------

# Debian's nginx-dev configure flags, with the file system paths replaced by
# ones relative to the prefix, so that the binary runs uninstalled with
# `-p <dir>` (what the test harness does) and never touches /etc or /var.
conf_flags() {
    # shellcheck disable=SC1090
    source "$NGX_DEV_FLAGS"
    local f out=()
    for f in "${NGX_CONF_FLAGS[@]}"; do
        case $f in
            --prefix=*|--conf-path=*|--http-log-path=*|--error-log-path=*|\
            --lock-path=*|--pid-path=*|--modules-path=*|--http-*-temp-path=*)
                ;;                                   # replaced below
            *) out+=("$f") ;;
        esac
    done
    out+=(
        --prefix="$ASAN_DIR/prefix"
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
        --with-cc-opt="$CC_OPT"
        --with-ld-opt="$LD_OPT"
        --add-dynamic-module="$ROOT"
    )
    printf '%s\n' "${out[@]}"
}

step_configure() {
    local tree=$SRC_LINK stamp=$ASAN_DIR/.configured want
    write_policy
    want=$( { conf_flags; md5sum < "$ROOT/config"; } | md5sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
       [ -f "$tree/objs/Makefile" ]; then
        return 0
    fi
    grep -q NGX_DEBUG_PALLOC "$tree/src/core/ngx_palloc.c" ||
        log "warning: this nginx has no NGX_DEBUG_PALLOC; pools hide bugs from ASan"

    # A reconfigure (e.g. the module's `config` gained a source file) rewrites
    # objs/ngx_auto_*.h, on which every object of nginx depends.  Keep their
    # old timestamps when their content did not change, so that only the
    # module is rebuilt, not all of nginx.
    local keep=$ASAN_DIR/.keep h
    rm -rf "$keep"; mkdir -p "$keep"
    for h in ngx_auto_config.h ngx_auto_headers.h; do
        [ -f "$tree/objs/$h" ] && cp -p "$tree/objs/$h" "$keep/$h"
    done

    local flags=()
    mapfile -t flags < <(conf_flags)
    log "configuring nginx ($(basename "$(readlink -f "$tree")")) with ASan+UBSan"
    (cd "$tree" && ./configure "${flags[@]}") > "$ASAN_DIR/configure.log" 2>&1 ||
        { tail -30 "$ASAN_DIR/configure.log" >&2; die "configure failed"; }

    for h in ngx_auto_config.h ngx_auto_headers.h; do
        if [ -f "$keep/$h" ] && cmp -s "$keep/$h" "$tree/objs/$h"; then
            touch -r "$keep/$h" "$tree/objs/$h"
        fi
    done
    rm -rf "$keep"
    mkdir -p "$ASAN_DIR/prefix"/{conf,logs,modules}
    echo "$want" > "$stamp"
}

# --- build ------------------------------------------------------------------

step_nginx() {
    step_source
    step_configure
    local t0 t1
    t0=$(date +%s)
    log "building nginx (make -j$JOBS binary; log: $ASAN_DIR/nginx-build.log)"
    make -C "$SRC_LINK" -f objs/Makefile -j"$JOBS" binary \
        > "$ASAN_DIR/nginx-build.log" 2>&1 ||
        { tail -40 "$ASAN_DIR/nginx-build.log" >&2; die "nginx build failed"; }
    t1=$(date +%s)
    # copy only when changed, so make sees a new file only after a rebuild
    if ! cmp -s "$SRC_LINK/objs/nginx" "$ASAN_DIR/nginx-bin"; then
        cp "$SRC_LINK/objs/nginx" "$ASAN_DIR/nginx-bin.tmp"
        mv -f "$ASAN_DIR/nginx-bin.tmp" "$ASAN_DIR/nginx-bin"
        log "nginx-bin built in $((t1 - t0))s"
    fi
}

step_module() {
    step_source
    step_configure
    log "building the module (make -f objs/Makefile modules)"
    make -C "$SRC_LINK" -f objs/Makefile -j"$JOBS" modules \
        > "$ASAN_DIR/module-build.log" 2>&1 ||
        { tail -40 "$ASAN_DIR/module-build.log" >&2; die "module build failed"; }
    local so=$SRC_LINK/objs/ngx_http_sse_module.so
    if ! cmp -s "$so" "$ASAN_DIR/ngx_http_sse_module.so"; then
        cp "$so" "$ASAN_DIR/ngx_http_sse_module.so.tmp"
        mv -f "$ASAN_DIR/ngx_http_sse_module.so.tmp" "$ASAN_DIR/ngx_http_sse_module.so"
    fi
    ln -sfn "$ASAN_DIR/ngx_http_sse_module.so" "$ASAN_DIR/prefix/modules/ngx_http_sse_module.so"
}

# --- running ------------------------------------------------------------------

# prove --exec "asan-build.sh run-test" runs each test file through this:
# the sanitizer reports of the nginx processes a test file starts go to a
# directory of their own ($ASAN_REPORTS/<test file>/san.<pid>), and a test
# file that left any fails (exit 1, reports shown) even when all its
# checks passed -- so a report is pinned to the test that caused it.
step_run_test() {
    local t=${1:?test file} name dir rc
    : "${ASAN_REPORTS:?set by mk/asan.mk}"
    name=${t#./}; name=${name//\//_}
    dir=$ASAN_REPORTS/$name
    rm -rf "$dir"; mkdir -p "$dir"
    chmod 1777 "$dir"                    # nginx workers run as nobody
    ASAN_OPTIONS=$(sed "s|log_path=[^:]*|log_path=$dir/san|" <<< "${ASAN_OPTIONS:-}")
    UBSAN_OPTIONS=$(sed "s|log_path=[^:]*|log_path=$dir/san|" <<< "${UBSAN_OPTIONS:-}")
    export ASAN_OPTIONS UBSAN_OPTIONS
    rc=0
    perl -I"$ROOT/t/lib" "$t" || rc=$?
    if compgen -G "$dir/san.*" >/dev/null; then
        {
            echo "# sanitizer reports from $t (in $dir):"
            head -n 150 "$dir"/san.* | step_symbolize | sed 's/^/#   /'
        } >&2
        [ $rc = 0 ] && rc=1
    else
        rmdir "$dir" 2>/dev/null
    fi
    return $rc
}

# Filter: resolve the frames a runtime could not, "(/path/x.so+0x1234)",
# with addr2line (function, file:line; inlined frames too).
step_symbolize() {
    local line obj off sym
    while IFS= read -r line; do
        if [[ $line =~ ^([[:space:]]*#[0-9]+\ 0x[0-9a-f]+\ +)\((/[^+\)]+)\+(0x[0-9a-f]+)\)$ ]] &&
           [ -f "${BASH_REMATCH[2]}" ]; then
            obj=${BASH_REMATCH[2]} off=${BASH_REMATCH[3]}
            sym=$(addr2line -f -C -i -p -e "$obj" "$off" 2>/dev/null |
                  sed "s| at $ROOT/| at |" | paste -sd'|' | sed 's/|/ <- inlined in /g')
            if [ -n "$sym" ] && [[ $sym != "?? ??:0" ]]; then
                line="${BASH_REMATCH[1]}in $sym (${obj##*/}+$off)"
            fi
        fi
        printf '%s\n' "$line"
    done
}

# Fails when $ASAN_REPORTS holds any report: prints how many reports of
# each kind there are, then the first report of each kind (at most 5) in
# full.  A UBSan finding leaves its report in san.ubsan.<pid> and, through
# libasan, a one-line SUMMARY in san.<pid>: that line is not counted again.
step_check_reports() {
    : "${ASAN_REPORTS:?set by mk/asan.mk}"
    local f k seen="" shown=0 keys=()
    local -a files=()
    mapfile -t files < <(find "$ASAN_REPORTS" -type f -name 'san.*' 2>/dev/null | sort)
    if [ ${#files[@]} = 0 ]; then
        echo "sanitizer tier: no sanitizer reports"
        return 0
    fi
    echo "== sanitizer reports: ${#files[@]} files in $ASAN_REPORTS"
    for f in "${files[@]}"; do
        k=$(grep -m1 -hE 'ERROR: |runtime error:' "$f" || true)
        [ -n "$k" ] ||
            k=$(grep -v -m1 -E '^SUMMARY: UndefinedBehaviorSanitizer|^$' "$f" || true)
        [ -n "$k" ] || continue
        k=$(sed -E 's/^==[0-9]+==//; s/0x[0-9a-f]+/0x.../g' <<< "$k")
        keys+=("$k")
        case $seen in *"|$k|"*) continue ;; esac
        seen="$seen|$k|"
        [ $shown -lt 5 ] || continue
        shown=$((shown + 1))
        echo "---- ${f#"$ASAN_REPORTS"/}"
        head -n 60 "$f" | step_symbolize
    done > "$ASAN_REPORTS/.listing"
    printf '%s\n' "${keys[@]}" | sort | uniq -c | sort -rn
    cat "$ASAN_REPORTS/.listing"
    rm -f "$ASAN_REPORTS/.listing"
    echo "FAIL: sanitizer reports in $ASAN_REPORTS"
    return 1
}

case ${1:-} in
    source)    step_source ;;
    configure) step_source; step_configure ;;
    nginx)     step_nginx ;;
    module)    step_module ;;
    flags)     conf_flags ;;
    run-test)  shift; step_run_test "$@" ;;
    symbolize) step_symbolize ;;
    check-reports) step_check_reports ;;
    *) echo "usage: $0 source|configure|nginx|module|flags|run-test FILE|symbolize|check-reports" >&2
       exit 2 ;;
esac
