# Soak tier: long runs that look for loss, duplicates and memory growth.
#
#   make soak         build the module and the soak client, then run
#                     soak/run.sh: one nginx (2 workers), Run A (1 subscriber
#                     x 1,000,000 events) and Run B (1000 subscribers x 10,000
#                     events); fails on any lost, repeated or reordered event,
#                     on worker RSS growth past the 10% point, on a crashed
#                     worker or an [alert]/[crit]/[emerg] in error.log.  On
#                     success it rewrites docs/soak.md and docs/soak/rss.png.
#   make soak-client  only build build/soak/soak_client
#
# Knobs (environment): TEST_NGINX_BINARY, TEST_NGINX_MODULE, SOAK_SCALE,
# SOAK_MAX_GROWTH_KB, SOAK_INTERVAL, SOAK_DOCS=0, SOAK_KEEP=1 (soak/run.sh).

SOAK_DIR      := $(BUILD)/soak
SOAK_CLIENT   := $(SOAK_DIR)/soak_client
SOAK_CXX      ?= g++
SOAK_CXXFLAGS ?= -std=c++17 -O2 -g -Wall -Wextra -Werror -Wshadow

.PHONY: soak soak-client

soak-client: $(SOAK_CLIENT)

$(SOAK_CLIENT): $(ROOT)/soak/soak_client.cpp $(ROOT)/mk/soak.mk
	@mkdir -p $(@D)
	$(SOAK_CXX) $(SOAK_CXXFLAGS) -o $@ $<

# TEST_NGINX_MODULE names another module build: then this one is not needed.
soak: deps $(SOAK_CLIENT) $(if $(TEST_NGINX_MODULE),,build)
	@bash $(ROOT)/soak/run.sh $(ROOT) $(BUILD)
