# Hostile tier: raw-socket and HTTP/2 attack clients against a running
# module (t/hostile/*.t, harness t/lib/SSETest/Hostile.pm).  Every test
# file ends with the same checks: no worker died, no [alert]/[crit], a
# normal publish/subscribe round trip delivers exactly, subscribers back
# to 0, worker RSS grew by at most 64 MB (8x on the sanitizer build).
#
#   make test-hostile        on the normal build (or on TEST_NGINX_BINARY /
#                            TEST_NGINX_MODULE when they are set)
#   make test-hostile-asan   on the ASan+UBSan build of mk/asan.mk; fails on
#                            any sanitizer report too
#
# The files run one after the other (their timing bounds, e.g. "an old
# worker exits within about a second", are about the module, not about
# a loaded machine); the whole tier takes a few minutes.

HOSTILE_TESTS = $(sort $(wildcard $(ROOT)/t/hostile/*.t))

.PHONY: test-hostile test-hostile-asan

test-hostile: deps build
	@ulimit -n "$$(ulimit -Hn)" 2>/dev/null; start=$$(date +%s); rc=0; \
	prove -I t/lib $(HOSTILE_TESTS) || rc=1; \
	echo "== hostile tier: $$(( $$(date +%s) - start ))s"; \
	exit $$rc

test-hostile-asan: asan-build
	@ulimit -n "$$(ulimit -Hn)" 2>/dev/null; start=$$(date +%s); rc=0; \
	$(ASAN_RESET_REPORTS); \
	$(ASAN_ENV) prove -I t/lib --exec "$(ASAN_TOOL) run-test" \
	    $(HOSTILE_TESTS) || rc=1; \
	echo "== hostile tier (sanitizers): $$(( $$(date +%s) - start ))s"; \
	{ $(ASAN_CHECK_REPORTS); } || rc=1; \
	exit $$rc
