/* The header compiles as C99 and C++17 with -Wall -Wextra -Werror, included twice. */
#include "flux_engine.h"
#include "flux_engine.h"

int main(void) {
  FluxEngineDesc desc;
  flux_engine_desc_init(&desc);
  return desc.abi_version == FLUX_ABI_VERSION && flux_abi_version() == FLUX_ABI_VERSION ? 0 : 1;
}
