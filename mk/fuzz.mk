# libFuzzer targets of the pure C++ parts (clang, ASan + UBSan).
#
#   make fuzz                  build every fuzzer and fuzz each for
#                              FUZZ_SECONDS (default 20); fails on any crash
#   make fuzz-regress          run every fuzzer once over its seed corpus
#                              (no fuzzing): quick, for CI
#   make fuzz-<target>         fuzz one target (event_stream, event_id,
#                              channel_list, encode, jwt, redis_url)
#
# Fuzzing works on a copy of fuzz/corpus/<target> in build/fuzz/corpus, so
# the inputs it finds never land in the repository; that copy is kept
# between runs, which lets later runs start from what earlier ones found.
# Crash reproducers are written to build/fuzz/artifacts/.  To keep one as
# a regression input, copy it to fuzz/corpus/<target>/ by hand.

.PHONY: fuzz fuzz-regress

FUZZ_TARGETS  := event_stream event_id channel_list encode jwt redis_url
FUZZ_SECONDS  ?= 20
FUZZ_DIR      := $(BUILD)/fuzz
FUZZ_CXX      ?= clang++
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Werror \
                 -fno-omit-frame-pointer $(FUZZ_SAN) -I$(ROOT)/src/pure
FUZZ_FLAGS    ?=

# (in obj/pure/: objects of src/ before its folders had obj/ to themselves,
# and their dependency files would still name the old sources)
FUZZ_LIB_OBJS := $(addprefix $(FUZZ_DIR)/obj/pure/, sse_wire.o \
                 sse_event_stream.o sse_base64url.o sse_json.o sse_jwt.o \
                 sse_jwt_keys.o sse_redis_url.o)
FUZZ_LIBS     := -lcrypto
FUZZ_BINS     := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%_fuzzer)

fuzz: $(FUZZ_TARGETS:%=fuzz-%)

fuzz-regress: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    echo "fuzz-regress: $$t"; \
	    mkdir -p $(FUZZ_DIR)/artifacts; \
	    $(FUZZ_DIR)/$${t}_fuzzer \
	        -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	        $(ROOT)/fuzz/corpus/$$t/* 2>$(FUZZ_DIR)/$$t-regress.log \
	        || { cat $(FUZZ_DIR)/$$t-regress.log; exit 1; }; \
	done

# the library code is instrumented for coverage, not linked with a main
$(FUZZ_DIR)/obj/pure/%.o: $(ROOT)/src/pure/%.cpp $(ROOT)/mk/fuzz.mk
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -MMD -MP \
	    -c -o $@ $<

$(FUZZ_DIR)/obj/%_fuzzer.o: $(ROOT)/fuzz/%_fuzzer.cpp $(ROOT)/mk/fuzz.mk
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -MMD -MP \
	    -c -o $@ $<

$(FUZZ_DIR)/%_fuzzer: $(FUZZ_DIR)/obj/%_fuzzer.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

# keep the objects make would see as intermediate and delete
.SECONDARY: $(FUZZ_LIB_OBJS) $(FUZZ_TARGETS:%=$(FUZZ_DIR)/obj/%_fuzzer.o)

-include $(wildcard $(FUZZ_DIR)/obj/*_fuzzer.d $(FUZZ_DIR)/obj/pure/*.d)

define FUZZ_RUN_RULE
.PHONY: fuzz-$(1)
fuzz-$(1): $(FUZZ_DIR)/$(1)_fuzzer
	@mkdir -p $(FUZZ_DIR)/corpus/$(1) $(FUZZ_DIR)/artifacts
	@cp -R $(ROOT)/fuzz/corpus/$(1)/. $(FUZZ_DIR)/corpus/$(1)/
	@echo "fuzz: $(1) for $(FUZZ_SECONDS)s (log: $(FUZZ_DIR)/$(1).log)"
	@$(FUZZ_DIR)/$(1)_fuzzer -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/$(1)- $(FUZZ_FLAGS) \
	    $(FUZZ_DIR)/corpus/$(1) > $(FUZZ_DIR)/$(1).log 2>&1 \
	    || { tail -60 $(FUZZ_DIR)/$(1).log; \
	         echo "fuzz: $(1) FAILED, reproducer in $(FUZZ_DIR)/artifacts/"; \
	         exit 1; }
	@grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' \
	    $(FUZZ_DIR)/$(1).log | sed 's/^/fuzz: $(1): /'
endef

$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RUN_RULE,$(t))))
