/* the test doubles of nginx_double.cpp */

#ifndef SSE_TEST_NGINX_DOUBLE_H
#define SSE_TEST_NGINX_DOUBLE_H

#include <string>

namespace sse_test {

void nginx_init();
void advance_clock(time_t seconds);
const std::string &last_log_line();
ngx_uint_t worker_woken();

} // namespace sse_test

#endif
