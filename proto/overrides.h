// overrides.h (internal to proto/)
//
// `--set PATH=VALUE`: sets one scalar field (number, bool, enum, string) of a message by its
// dotted field path, through protobuf reflection, so every field of the schema is reachable
// without a hand-written table. Enum values are matched case-insensitively. An empty value clears
// a number, bool or enum field back to unset ("training.first_stage_layers=").
#pragma once

#include <string>

#include <google/protobuf/message.h>

#include "common/status.h"

namespace moesim {

// Parses "PATH=VALUE" and sets the field. On success *path_out is PATH.
Status ApplyOverride(const std::string& assignment, google::protobuf::Message* message,
                     std::string* path_out);

}  // namespace moesim
