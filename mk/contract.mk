# Store contract tests: the GoogleTest suite every store must pass
# (tests/contract/store_contract.h), run on the shared-memory store.
#
#   make contract   build build/contract/sse_store_contract and run it
#
# The shm store needs nginx's core objects (slab allocator, shmtx,
# rbtree, strings, crc32).  They are the sanitizer tier's (mk/asan.mk):
# its nginx tree (build/asan/nginx-src, fetched and built by
# `make asan-nginx` the first time, ~10 min; nothing to do afterwards) has
# them compiled with ASan+UBSan, so the store's own files and the tests are
# compiled with the same flags and the contract runs under the sanitizers
# too.  Only the few objects the store reads are linked, not nginx's main:
# tests/contract/nginx_double.cpp defines the globals a running nginx would
# (cycle, clock, pid, log) and the worker side the store calls back.
#
# Run by .ci/run (after make test-asan has built the tree), not by
# `make test`: on a fresh clone its first build is the sanitizer tier's
# nginx build.  Afterwards it takes a few seconds.

.PHONY: contract

CONTRACT_DIR  := $(BUILD)/contract
CONTRACT_BIN  := $(CONTRACT_DIR)/sse_store_contract
CONTRACT_NGX  := $(ASAN_DIR)/nginx-src
CONTRACT_CXX  ?= g++
CONTRACT_SAN  := -fsanitize=address,undefined -fno-omit-frame-pointer
CONTRACT_INCS := -I$(ROOT)/src/pure -I$(ROOT)/src/store -I$(ROOT)/src/nginx \
                 -I$(ROOT)/tests/contract \
                 $(addprefix -I$(CONTRACT_NGX)/, src/core src/event \
                     src/event/modules src/os/unix objs src/http \
                     src/http/modules src/http/v2)
CONTRACT_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Werror \
                     -Wno-unused-parameter -Wno-missing-field-initializers \
                     $(CONTRACT_SAN) $(CONTRACT_INCS)
CONTRACT_LIBS := -lgtest_main -lgtest -lcrypto -pthread

# the store's files, and the pure C++ they use
CONTRACT_MODULE_SRCS := $(addprefix $(ROOT)/src/store/, \
                            ngx_http_sse_store.cpp \
                            ngx_http_sse_store_shm.cpp \
                            ngx_http_sse_store_wake.cpp \
                            ngx_http_sse_store_idem.cpp) \
                        $(ROOT)/src/pure/sse_wire.cpp
CONTRACT_SRCS := $(CONTRACT_MODULE_SRCS) \
                 $(sort $(wildcard $(ROOT)/tests/contract/*.cpp))
CONTRACT_OBJS := $(patsubst $(ROOT)/%.cpp,$(CONTRACT_DIR)/%.o,$(CONTRACT_SRCS))

# nginx's objects, from its own build
CONTRACT_NGX_OBJS := $(addprefix $(CONTRACT_NGX)/objs/src/, \
                     core/ngx_slab.o core/ngx_shmtx.o core/ngx_rbtree.o \
                     core/ngx_string.o core/ngx_crc32.o core/ngx_queue.o \
                     core/ngx_palloc.o \
                     os/unix/ngx_alloc.o)

contract: asan-nginx
	@$(MAKE) --no-print-directory $(CONTRACT_BIN)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(CONTRACT_BIN) $(CONTRACT_ARGS)

$(CONTRACT_BIN): $(CONTRACT_OBJS) $(CONTRACT_NGX_OBJS)
	$(CONTRACT_CXX) $(CONTRACT_CXXFLAGS) -o $@ $^ $(CONTRACT_LIBS)

$(CONTRACT_DIR)/%.o: $(ROOT)/%.cpp $(ROOT)/mk/contract.mk
	@mkdir -p $(@D)
	$(CONTRACT_CXX) $(CONTRACT_CXXFLAGS) -MMD -MP -c -o $@ $<

-include $(CONTRACT_OBJS:.o=.d)
