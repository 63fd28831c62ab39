#include "real/comm/comm.h"

namespace moesim::real {

const char* GroupName(Group g) {
  switch (g) {
    case Group::kWorld:
      return "world";
    case Group::kData:
      return "data";
    case Group::kExpert:
      return "expert";
  }
  return "?";
}

}  // namespace moesim::real
