# ngx_http_sse_module -- build, run, test.
#
#   make          build build/ngx_http_sse_module.so against Debian's nginx
#   make run      install what is missing, build, run nginx in the foreground
#                 on 127.0.0.1:8080 with examples/nginx.conf and a demo page
#   make test     install what is missing, build, run the whole test suite
#   make deps     install (apt, npm) everything build and tests need
#   make clean
#   make NGINX_SRC=<nginx source tree> [NGINX_CONFIGURE="<nginx -V args>"]
#                 build the module for that nginx instead (docs/install.md)
#
# Further tiers (mk/*.mk): unit, test-browser, test-asan, fuzz, soak, bench,
# test-matrix (nginx 1.24-1.31), deb and test-deb (the Debian package).

SHELL := /bin/bash
.DEFAULT_GOAL := build

ROOT      := $(CURDIR)
BUILD     := $(ROOT)/build
SOURCES   := config $(wildcard src/*/*.cpp src/*/*.h)
NGX_BUILD := $(ROOT)/build-tools/nginx-build.sh

# The nginx the module is built for.  By default Debian's own (nginx-dev's
# tree, configured as the packaged binary was); `make NGINX_SRC=<nginx
# source tree>` builds it for another nginx instead (docs/install.md):
# the module lands in build/nginx-<version>/.
DEBIAN_NGX_SRC := /usr/share/nginx/src
NGINX_SRC      ?= $(DEBIAN_NGX_SRC)
ifeq ($(NGINX_SRC),$(DEBIAN_NGX_SRC))
NGX_TREE  := $(BUILD)/nginx
MODULE    := $(BUILD)/ngx_http_sse_module.so
else
NGX_VERSION := $(shell $(NGX_BUILD) version $(NGINX_SRC))
ifeq ($(NGX_VERSION),)
$(error NGINX_SRC=$(NGINX_SRC) is not an nginx source tree (no src/core/nginx.h))
endif
NGX_TREE  := $(BUILD)/nginx-$(NGX_VERSION)/tree
MODULE    := $(BUILD)/nginx-$(NGX_VERSION)/ngx_http_sse_module.so
endif

# Debian packages that building and testing need.  `make deps` installs
# the ones that are missing; it is a no-op on a prepared machine.
APT_PACKAGES := nginx nginx-dev libnginx-mod-nchan g++ make perl curl \
                ca-certificates openssl libssl-dev libpcre2-dev zlib1g-dev \
                googletest libgtest-dev \
                chromium \
                clang libclang-rt-14-dev gnuplot-nox procps psmisc \
                dpkg-dev build-essential debhelper \
                haproxy libhiredis-dev redis-server

# Node.js may come from elsewhere than Debian (with its own npm, which
# Debian's npm package would conflict with): only when node or npm is
# missing are Debian's nodejs and npm installed.  Debian 12's Node.js is
# 18, so t/browser's tools must run on Node 18 (playwright-core 1.61 is
# the last release whose engines allow it).  ca-certificates (above):
# npm fetches from its registry over HTTPS.
NODE_PACKAGES := nodejs npm

.PHONY: build deps run test clean check-nginx

build: $(MODULE)

# Always ask the script: it reconfigures when the flags or `config` changed,
# and nginx's own objs/Makefile knows which objects are stale.  The module
# is compiled with the flags of the nginx it loads into (nginx -V: -O2,
# stack protector, _FORTIFY_SOURCE, full RELRO), with nginx's -Werror.
$(MODULE): $(SOURCES) $(NGX_BUILD) FORCE | $(if $(filter $(DEBIAN_NGX_SRC),$(NGINX_SRC)),$(DEBIAN_NGX_SRC)/conf_flags)
	@$(NGX_BUILD) module $(NGINX_SRC) $(NGX_TREE)
	@# a new file, not an overwrite: running nginx processes keep the old
	@# mapping intact (an in-place copy would crash them)
	@mkdir -p $(@D)
	@cmp -s $(NGX_TREE)/objs/ngx_http_sse_module.so $@ || \
	    { cp $(NGX_TREE)/objs/ngx_http_sse_module.so $@.tmp && mv -f $@.tmp $@ && \
	      echo "built $@"; }

.PHONY: FORCE
FORCE:

$(DEBIAN_NGX_SRC)/conf_flags:
	@echo "nginx-dev is not installed: run 'make deps' (as root)" >&2; exit 1

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	        || missing="$$missing $$p"; \
	done; \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	    missing="$$missing $(NODE_PACKAGES)"; \
	fi; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    if [ "$$(id -u)" != 0 ]; then echo "run 'make deps' as root" >&2; exit 1; fi; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing \
	        > $(BUILD).apt.log 2>&1 || { tail -30 $(BUILD).apt.log; exit 1; }; \
	fi
	@# nginx from the package is not wanted as a running service here
	@if systemctl is-active --quiet nginx 2>/dev/null; then systemctl stop nginx || true; fi
	@$(MAKE) --no-print-directory npm-deps

run: deps build
	@bash examples/run.sh

test: deps build
	@bash t/run-all.sh

clean:
	rm -rf $(BUILD) $(BUILD).apt.log

-include mk/*.mk
