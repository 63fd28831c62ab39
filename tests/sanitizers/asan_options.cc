// Default AddressSanitizer options of the sanitizer build (scripts/sanitize.sh compiles this
// file, uninstrumented, and links it into every executable; ASAN_OPTIONS in the environment
// still overrides it).
//
// Processes that load Open MPI (moesim-real, the real/ tests) record every allocation's stack
// with the full unwinder: LeakSanitizer can then match the Open MPI frames of the allocations
// that MPI_Init makes and never frees (tests/sanitizers/lsan.supp), which the frame-pointer
// unwinder cannot see past system libraries built without frame pointers. Every other process
// keeps the fast unwinder: the full one would make the whole suite four times slower.
//
// Runs inside ASan's initialization, before the interceptors are set up: raw system calls and
// hand-written loops only (no libc string functions).
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

namespace {

constexpr char kNeedle[] = "/libmpi.so";
constexpr size_t kNeedleLen = sizeof(kNeedle) - 1;

bool Contains(const char* text, size_t len) {
  for (size_t i = 0; i + kNeedleLen <= len; ++i) {
    size_t j = 0;
    while (j < kNeedleLen && text[i + j] == kNeedle[j]) ++j;
    if (j == kNeedleLen) return true;
  }
  return false;
}

bool LoadsOpenMpi() {
  const long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  static char buf[16384];
  size_t keep = 0;  // the tail of the previous block, so a name split across reads is found
  bool found = false;
  for (;;) {
    const long got = syscall(SYS_read, fd, buf + keep, sizeof(buf) - keep);
    if (got <= 0) break;
    const size_t len = keep + static_cast<size_t>(got);
    if (Contains(buf, len)) {
      found = true;
      break;
    }
    keep = len < kNeedleLen ? len : kNeedleLen - 1;
    for (size_t i = 0; i < keep; ++i) buf[i] = buf[len - keep + i];
  }
  syscall(SYS_close, fd);
  return found;
}

}  // namespace

extern "C" const char* __asan_default_options() {
  return LoadsOpenMpi() ? "fast_unwind_on_malloc=0" : "";
}
