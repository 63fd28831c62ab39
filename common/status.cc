#include "common/status.h"

#include <iostream>

namespace moesim {

Status Status::WithPrefix(const std::string& prefix) const {
  if (ok()) return *this;
  return Status(code_, prefix + message_);
}

void Status::PrintTo(const std::string& program) const {
  const std::string line = program + ": " + message_ + "\n";
  // One insertion into the unit-buffered std::cerr is one write to the unbuffered stderr; and
  // std::cerr, not stderr, so that a rank whose std::cerr is silenced stays silent.
  std::cerr << line;
  std::cerr.flush();
}

}  // namespace moesim
