// system_memory.h
//
// The machine's physical memory, for the checks that refuse a job estimated not to fit
// (simulations, moesim-real training) before it allocates, instead of letting the kernel's
// out-of-memory killer end the process. Thread safety: pure function.
#pragma once

#include <unistd.h>

namespace moesim {

// Bytes of physical memory (sysconf); 0 when the system does not say.
inline double PhysicalMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<double>(pages) * static_cast<double>(page);
}

}  // namespace moesim
