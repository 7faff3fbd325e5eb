# Sanitizer tier: nginx and the module built with ASan + UBSan, the whole
# t/ suite run on them.
#
#   make test-asan     build what is missing or stale, run the smoke check
#                      and `prove t/*.t` on the sanitizer build; fails on any
#                      test failure or any sanitizer report
#   make asan-build    only build: build/asan/nginx-bin, .../ngx_http_sse_module.so
#   make asan-smoke    build, then only the smoke check (build-tools/asan-smoke.sh)
#   make asan-clean    remove build/asan (the nginx source is fetched again)
#
# How it is built (build-tools/asan-build.sh does the work):
#  - Debian's own nginx source (`apt-get source nginx`, the version that is
#    installed; a deb-src entry is added to /etc/apt/sources.list.d/ once),
#    unpacked into build/asan/nginx-<version>/ and cached there.
#  - configured with nginx-dev's conf_flags (the flags third-party modules
#    are built against) with paths relative to the prefix, so that the
#    binary runs uninstalled with -p, plus --add-dynamic-module=$(ROOT);
#    cc-opt/ld-opt: -fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g
#    -DNGX_DEBUG_PALLOC=1 (every pool allocation its own malloc: ASan sees
#    pool overflows and use-after-free) -DNGX_DEBUG_MALLOC=1 (freed slab
#    memory is junk-filled).  nginx itself is built once (`make binary`,
#    about a minute on 2 cores); a change in src/ rebuilds only the module
#    (`make -f objs/Makefile modules`); a change in `config` reconfigures
#    without rebuilding nginx's objects.
#
# Where sanitizer reports go, and what fails the tier:
#  - ASan, LSan and UBSan all write to files, log_path=$(ASAN_REPORTS)/...
#    (not stderr: nginx points its stderr at error.log only once the config
#    is read, and not at all with `error_log stderr`).  Each test file runs
#    through `asan-build.sh run-test`, which gives it its own report
#    directory and fails the file if any report appears there; the tier
#    then fails if any report file exists at all.  The test harness
#    (t/lib) also scans error.log and nginx's stderr for sanitizer output.
#  - UBSan: halt_on_error=0 (report and go on; the report still fails the
#    tier), print_stacktrace=1.  GCC's split runtimes ignore UBSan's
#    log_path; a small object linked into nginx-bin fixes that (see
#    write_policy in asan-build.sh); its reports are the san.ubsan.<pid>
#    files, ASan's and LSan's san.<pid>.
#  - Suppressed, findings that are nginx's by design (both files are written
#    by asan-build.sh, with the reasons): build/asan/ubsan.supp (misaligned
#    access in nginx's own files only, memcpy(.., NULL, 0) in ngx_string.c),
#    build/asan/asan.supp (the ODR "violation" of the globals every dynamic
#    module defines: ngx_modules, ngx_module_names, ngx_module_order),
#    build/asan/lsan.supp (nginx 1.22 drops its PCRE2 compile context: 72
#    bytes per worker of any config with a regex).
#  - Frames in the module stay readable in leak reports (the module is linked
#    -z nodelete, so a worker's dlclose() at exit leaves it mapped), and the
#    report listing resolves any raw "(x.so+0x..)" frame with addr2line.
#  - LeakSanitizer is on, but only for worker processes.  nginx's master,
#    `nginx -t` and `nginx -s` never free their init cycle / old cycles
#    (measured: every `nginx -t` and `-s reload` reports ~1 KB, a reloaded
#    master ~130 KB, and exits 1 because of it), so LSan there would only
#    report nginx itself and break the harness's `nginx -t` checks.
#    A worker destroys its cycle pool before exit(), so a leak LSan finds
#    in a worker is real (e.g. per-worker state not released in
#    exit_process).  Workers killed by signals are never leak-checked.
#  - Allocations the module makes in shared memory (ngx_slab) are invisible
#    to ASan; NGX_DEBUG_MALLOC junk-fills them on free instead.

ASAN_DIR     := $(BUILD)/asan
ASAN_NGINX   := $(ASAN_DIR)/nginx-bin
ASAN_MODULE  := $(ASAN_DIR)/ngx_http_sse_module.so
ASAN_REPORTS := $(ASAN_DIR)/reports
ASAN_TOOL    := $(ROOT)/build-tools/asan-build.sh
ASAN_SMOKE   := $(ROOT)/build-tools/asan-smoke.sh
ASAN_JOBS    ?= 2

# Options common to all sanitizers.  They go into both variables: with
# GCC's split runtimes libubsan re-reads the common flags (log_path,
# detect_leaks, ...) from UBSAN_OPTIONS after libasan read ASAN_OPTIONS.
# print_suppressions=0: a suppressed finding must leave no file behind.
ASAN_COMMON_OPTS := log_path=$(ASAN_REPORTS)/san:handle_abort=1:detect_leaks=1:print_summary=1:print_suppressions=0
ASAN_ENV := \
    ASAN_OPTIONS=$(ASAN_COMMON_OPTS):check_initialization_order=1:strict_init_order=1:suppressions=$(ASAN_DIR)/asan.supp \
    UBSAN_OPTIONS=$(ASAN_COMMON_OPTS):print_stacktrace=1:halt_on_error=0:report_error_type=1:suppressions=$(ASAN_DIR)/ubsan.supp \
    LSAN_OPTIONS=suppressions=$(ASAN_DIR)/lsan.supp \
    ASAN_REPORTS=$(ASAN_REPORTS) \
    TEST_NGINX_BINARY=$(ASAN_NGINX) \
    TEST_NGINX_MODULE=$(ASAN_MODULE)

# Fails if any sanitizer report file exists (asan-build.sh check-reports:
# a count per kind of finding, then the first report of each kind in full).
ASAN_CHECK_REPORTS = ROOT=$(ROOT) ASAN_REPORTS=$(ASAN_REPORTS) $(ASAN_TOOL) check-reports

ASAN_RESET_REPORTS = rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS) && \
                     chmod 1777 $(ASAN_REPORTS)

.PHONY: test-asan asan-build asan-nginx asan-module asan-smoke asan-clean

# Always ask the script: it (and nginx's own objs/Makefile) knows what is
# stale, and finding nothing to do takes a fraction of a second.
asan-nginx:
	@ROOT=$(ROOT) ASAN_DIR=$(ASAN_DIR) JOBS=$(ASAN_JOBS) $(ASAN_TOOL) nginx

asan-module: asan-nginx
	@ROOT=$(ROOT) ASAN_DIR=$(ASAN_DIR) JOBS=$(ASAN_JOBS) $(ASAN_TOOL) module

asan-build: asan-nginx asan-module

asan-smoke: asan-build
	@$(ASAN_RESET_REPORTS)
	@$(ASAN_ENV) $(ASAN_SMOKE) $(ASAN_NGINX) $(ASAN_MODULE)
	@$(ASAN_CHECK_REPORTS)

# The smoke check first (ten seconds: does the sanitizer build start with
# the module and serve it over HTTP/1.1 and HTTP/2 at all?), then the suite.
# The open-files limit is raised to the hard limit (t/040 holds 4000
# subscribers) and TEST_NGINX_NO_SKIP=1 makes any skip a failure.
test-asan: asan-build
	@start=$$(date +%s); rc=0; \
	$(ASAN_RESET_REPORTS); \
	echo "== sanitizer tier: smoke"; \
	$(ASAN_ENV) $(ASAN_SMOKE) $(ASAN_NGINX) $(ASAN_MODULE) || rc=1; \
	if [ -n "$$(find t -name '*.t' 2>/dev/null | head -1)" ]; then \
	    echo "== sanitizer tier: prove t/*.t (nginx-bin and module with ASan+UBSan)"; \
	    ulimit -n "$$(ulimit -Hn)" 2>/dev/null || true; \
	    $(ASAN_ENV) TEST_NGINX_NO_SKIP=1 prove -I t/lib --exec "$(ASAN_TOOL) run-test" t/*.t || rc=1; \
	fi; \
	echo "== sanitizer tier: tests took $$(( $$(date +%s) - start ))s"; \
	{ $(ASAN_CHECK_REPORTS); } || rc=1; \
	exit $$rc

asan-clean:
	rm -rf $(ASAN_DIR)
