# Unit tests of the pure C++ parts (no nginx): GoogleTest.
#
#   make unit     build build/unit/sse_unit_tests and run it, then
#                 build/unit/sse_alloc_tests: tests/unit/alloc/ replaces
#                 operator new in its own way, so it cannot share a
#                 binary with tests/unit/alloc_failure_test.cpp
#
# Objects carry -MMD dependency files, so editing a header rebuilds what
# includes it.

.PHONY: unit

UNIT_DIR      := $(BUILD)/unit
UNIT_BIN      := $(UNIT_DIR)/sse_unit_tests
UNIT_CXX      ?= g++
UNIT_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Werror -I$(ROOT)/src/pure
UNIT_LIBS     := -lgtest_main -lgtest -pthread -lcrypto

UNIT_LIB_SRCS := $(addprefix $(ROOT)/src/pure/, sse_wire.cpp \
                 sse_event_stream.cpp sse_base64url.cpp sse_json.cpp \
                 sse_jwt.cpp sse_jwt_keys.cpp sse_redis_url.cpp)
UNIT_SRCS := $(UNIT_LIB_SRCS) $(sort $(wildcard $(ROOT)/tests/unit/*.cpp))
UNIT_OBJS := $(patsubst $(ROOT)/%.cpp,$(UNIT_DIR)/%.o,$(UNIT_SRCS))

UNIT_ALLOC_BIN  := $(UNIT_DIR)/sse_alloc_tests
UNIT_ALLOC_SRCS := $(UNIT_LIB_SRCS) \
                   $(sort $(wildcard $(ROOT)/tests/unit/alloc/*.cpp))
UNIT_ALLOC_OBJS := $(patsubst $(ROOT)/%.cpp,$(UNIT_DIR)/%.o,$(UNIT_ALLOC_SRCS))

unit: $(UNIT_BIN) $(UNIT_ALLOC_BIN)
	$(UNIT_BIN) $(UNIT_ARGS)
	$(UNIT_ALLOC_BIN) $(UNIT_ARGS)

$(UNIT_BIN): $(UNIT_OBJS)
	$(UNIT_CXX) $(UNIT_CXXFLAGS) -o $@ $^ $(UNIT_LIBS)

$(UNIT_ALLOC_BIN): $(UNIT_ALLOC_OBJS)
	$(UNIT_CXX) $(UNIT_CXXFLAGS) -o $@ $^ $(UNIT_LIBS)

$(UNIT_DIR)/%.o: $(ROOT)/%.cpp $(ROOT)/mk/unit.mk
	@mkdir -p $(@D)
	$(UNIT_CXX) $(UNIT_CXXFLAGS) -MMD -MP -c -o $@ $<

-include $(UNIT_OBJS:.o=.d) $(UNIT_ALLOC_OBJS:.o=.d)
