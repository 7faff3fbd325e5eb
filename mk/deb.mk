# Debian package: libnginx-mod-http-sse, built like Debian's own
# libnginx-mod-* (nginx-dev's nginx_mod build system and dh_nginx).
#
#   make deb        build build/deb/libnginx-mod-http-sse_<version>_<arch>.deb
#                   from packaging/debian/ (copied as debian/ next to a copy
#                   of config and src/ in build/deb/src/)
#   make test-deb   (root) build it, install it with apt, check the files,
#                   the modules-enabled link and `nginx -t` with the stock
#                   /etc/nginx, run the t/ suite against the installed
#                   /usr/lib/nginx/modules/ngx_http_sse_module.so, then purge
#                   the package (also when a step fails)
#
# The package depends on the exact nginx ABI it was built for
# (nginx-abi-1.22.1-7 on Debian 12): dh_nginx takes it from nginx-dev.

DEB_DIR     := $(BUILD)/deb
DEB_SRC     := $(DEB_DIR)/src
DEB_PACKAGE := libnginx-mod-http-sse

.PHONY: deb test-deb

deb: deps
	@rm -rf $(DEB_DIR) && mkdir -p $(DEB_SRC)
	@cp -a $(ROOT)/config $(ROOT)/src $(DEB_SRC)/
	@cp -a $(ROOT)/packaging/debian $(DEB_SRC)/debian
	@echo "dpkg-buildpackage (log: $(DEB_DIR)/build.log)"
	@cd $(DEB_SRC) && dpkg-buildpackage -b -us -uc > $(DEB_DIR)/build.log 2>&1 \
	    || { tail -40 $(DEB_DIR)/build.log; exit 1; }
	@ls $(DEB_DIR)/$(DEB_PACKAGE)_*.deb

test-deb: deb
	@DEB_PACKAGE=$(DEB_PACKAGE) $(ROOT)/build-tools/test-deb.sh $(DEB_DIR)/$(DEB_PACKAGE)_*.deb
