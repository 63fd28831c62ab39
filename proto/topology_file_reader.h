// topology_file_reader.h
//
// Reads a topology .textproto file (proto/topology.proto TopologyFile): parses it, checks its
// enums, and keeps where each field was written, so that every error names file:line. Shared by
// scenario validation (which needs the file's device count and chip up front) and topologies/
// (which builds the graph). Files larger than limits::kMaxInputFileBytes are refused unread.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "proto/field_locator.h"
#include "proto/topology.pb.h"

namespace moesim {

struct ParsedTopologyFile {
  pb::TopologyFile file;
  FieldLocator where;
};

// kInvalidInput naming the file (and file:line:col for a parse error) when it cannot be read.
Expected<ParsedTopologyFile> ReadTopologyFile(const std::string& path);

// The devices the file describes: num_devices, or those of its parameterized `base`;
// kInvalidInput at the field's line when neither is valid.
Expected<int64_t> TopologyFileDevices(const ParsedTopologyFile& parsed);

// The file's chip: `chip`, or the chip of its `base`; kInvalidInput at the field's line when it
// is not a built-in profile, and naming the file when it gives none.
Expected<std::string> TopologyFileChip(const ParsedTopologyFile& parsed);

}  // namespace moesim
