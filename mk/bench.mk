# Benchmarks: ngx_http_sse_module against nchan, a bare epoll floor server
# and plain nginx (docs/benchmarks.md tells what is measured and how).
#
#   make bench         the full suite (about 9 minutes); rewrites
#                      docs/benchmarks.md and the plots in docs/bench/
#   make bench-quick   small counts, for development; results go to
#                      build/bench/quick/ and docs/ is left alone
#   make bench-tools   only build the load generator and the floor server
#                      (and check the load generator's parsers and payloads)
#
# Both exit non-zero, after writing the report, when a target is not met, a
# measurement failed, a publish was answered other than 2xx or an event was
# lost, duplicated or reordered; the last lines ("bench: FAIL: ...") and the
# report's Verdict say which.
# bench/bench_report_test.py checks that logic on canned results (make test).
#
# BENCH_SERVERS=nchan,floor leaves the module out (and does not build it);
# BENCH_ONLY=broadcast,held runs only those workloads (bench/bench.py --help).

BENCH_DIR      := $(BUILD)/bench
BENCH_CXX      ?= g++
BENCH_CXXFLAGS ?= -std=c++17 -O2 -g -Wall -Wextra -Werror -Wshadow
BENCH_HEADERS  := $(wildcard $(ROOT)/bench/*.h)
BENCH_TOOLS    := $(BENCH_DIR)/loadgen $(BENCH_DIR)/floor $(BENCH_DIR)/http_sse_test.ok
BENCH_SERVERS  ?= module,nchan,floor
BENCH_ONLY     ?=
BENCH_DRIVER   := python3 $(ROOT)/bench/bench.py --build $(BENCH_DIR) \
                  --module $(MODULE) --servers $(BENCH_SERVERS) \
                  $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

.PHONY: bench bench-quick bench-tools

bench-tools: $(BENCH_TOOLS)

$(BENCH_DIR)/loadgen: $(ROOT)/bench/loadgen.cpp $(BENCH_HEADERS)
	@mkdir -p $(BENCH_DIR)
	$(BENCH_CXX) $(BENCH_CXXFLAGS) -o $@ $<

$(BENCH_DIR)/floor: $(ROOT)/bench/floor.cpp $(BENCH_HEADERS)
	@mkdir -p $(BENCH_DIR)
	$(BENCH_CXX) $(BENCH_CXXFLAGS) -o $@ $<

$(BENCH_DIR)/http_sse_test: $(ROOT)/bench/http_sse_test.cpp $(BENCH_HEADERS)
	@mkdir -p $(BENCH_DIR)
	$(BENCH_CXX) $(BENCH_CXXFLAGS) -o $@ $<

$(BENCH_DIR)/http_sse_test.ok: $(BENCH_DIR)/http_sse_test
	$< && touch $@

# The module is (re)built first, unless BENCH_SERVERS leaves it out.
BENCH_NEEDS := deps bench-tools $(if $(findstring module,$(BENCH_SERVERS)),build)

bench: $(BENCH_NEEDS)
	$(BENCH_DRIVER) --profile full \
	    --report $(ROOT)/docs/benchmarks.md --plots $(ROOT)/docs/bench

bench-quick: $(BENCH_NEEDS)
	$(BENCH_DRIVER) --profile quick \
	    --report $(BENCH_DIR)/quick/benchmarks.md --plots $(BENCH_DIR)/quick
