/* The header compiles as C99 and C++17 with -Wall -Wextra -Werror, included twice; and no
 * versioned struct has tail padding (a field added later into the padding would leave `sizeof`
 * unchanged, so `struct_size` could not tell the versions apart). */
#include <stddef.h>

#include "flux_engine.h"
#include "flux_engine.h"

/* Compiles only when `type` ends exactly at the end of `last`, its last field. */
#define NO_TAIL_PADDING(type, last)                                                              \
  typedef char no_tail_padding_##type[sizeof(type) == offsetof(type, last) + sizeof(((type *)0)->last) ? 1 : -1]

NO_TAIL_PADDING(FluxEngineDesc, memory_reserve);
NO_TAIL_PADDING(FluxModelDesc, reserved);
NO_TAIL_PADDING(FluxJobStatus, has_result);
NO_TAIL_PADDING(FluxEvent, reserved);
NO_TAIL_PADDING(FluxResidencyPlan, tiled_vae);
NO_TAIL_PADDING(FluxResidency, reserved);
NO_TAIL_PADDING(FluxImageDesc, reserved);
NO_TAIL_PADDING(FluxExternalMemory, reserved);
NO_TAIL_PADDING(FluxSemaphore, handle);

int main(void) {
  FluxEngineDesc desc;
  flux_engine_desc_init(&desc);
  return desc.abi_version == FLUX_ABI_VERSION && flux_abi_version() == FLUX_ABI_VERSION ? 0 : 1;
}
