/* The store contract (store_contract.h) on the shared-memory store. */

#include "shm_harness.h"


namespace sse_test {

INSTANTIATE_TYPED_TEST_SUITE_P(Shm, StoreContract, ShmHarness);

} // namespace sse_test
