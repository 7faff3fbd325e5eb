# Browser tier: Chromium (Debian package) driving EventSource through
# playwright-core (npm), with node's built-in test runner.
#
#   make npm-deps       install t/browser/node_modules from its lock file;
#                       a no-op while the lock file is unchanged
#   make test-browser   build, then run t/browser/*.test.mjs
#   make test-browser-asan  the same tests on the sanitizer build (mk/asan.mk:
#                       nginx-bin and the module with ASan+UBSan); fails on
#                       any test failure or any sanitizer report
#
# The tests honour TEST_NGINX_BINARY, TEST_NGINX_MODULE, TEST_CHROMIUM and
# TEST_NGINX_LEAVE (see t/browser/lib/harness.mjs).

BROWSER_DIR   := $(ROOT)/t/browser
# npm writes this "hidden lock file" on every install: it is the stamp.
BROWSER_STAMP := $(BROWSER_DIR)/node_modules/.package-lock.json
BROWSER_TESTS := $(sort $(wildcard $(BROWSER_DIR)/*.test.mjs))

.PHONY: npm-deps test-browser test-browser-asan

npm-deps: $(BROWSER_STAMP)
	@:

$(BROWSER_STAMP): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is not installed: run 'make deps' (as root)" >&2; exit 1; }
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The module is built with `make` (build); the tests start their own nginx.
test-browser: build npm-deps
	cd $(BROWSER_DIR) && TEST_NGINX_MODULE=$${TEST_NGINX_MODULE:-$(MODULE)} \
	    node --test --test-concurrency=1 $(notdir $(BROWSER_TESTS))

# The sanitizer build: its nginx binary and module, its report directory
# (ASAN_ENV of mk/asan.mk); the reports are checked afterwards as in
# test-asan.
test-browser-asan: asan-build npm-deps
	@rc=0; $(ASAN_RESET_REPORTS); \
	cd $(BROWSER_DIR) && $(ASAN_ENV) \
	    node --test --test-concurrency=1 $(notdir $(BROWSER_TESTS)) || rc=1; \
	{ $(ASAN_CHECK_REPORTS); } || rc=1; \
	exit $$rc
