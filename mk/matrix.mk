# Version matrix: the module on the upstream nginx releases users run.
#
#   make test-matrix   for each nginx-<version>.tar.gz in MATRIX_SOURCES
#                      (default ../shared/nginx: 1.24, 1.26, 1.28, 1.30
#                      stable, 1.31 mainline), build nginx --with-compat with
#                      SSL, HTTP/2 and HTTP/3 and the module into
#                      build/matrix/<version>/, and run the t/ suite on it
#
# MATRIX_VERSIONS="1.24 1.30 1.31" picks some (version prefixes).  Builds run
# under `nice -n 10`; each version takes ~1-2 min to build and ~2 min to test
# on 2 cores.  build-tools/test-matrix.sh does the work.

MATRIX_SOURCES  ?= $(abspath $(ROOT)/../shared/nginx)
MATRIX_VERSIONS ?=

.PHONY: test-matrix

test-matrix: deps
	@MATRIX_SOURCES=$(MATRIX_SOURCES) MATRIX_VERSIONS="$(MATRIX_VERSIONS)" \
	    $(ROOT)/build-tools/test-matrix.sh
