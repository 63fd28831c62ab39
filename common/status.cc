#include "common/status.h"

namespace moesim {

Status Status::WithPrefix(const std::string& prefix) const {
  if (ok()) return *this;
  return Status(code_, prefix + message_);
}

}  // namespace moesim
