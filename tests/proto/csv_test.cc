// SplitCsvLine (common/csv.h): RFC 4180 quoting as validation sets use it.
#include "common/csv.h"

#include <gtest/gtest.h>

namespace moesim {
namespace {

using V = std::vector<std::string>;

TEST(Csv, SplitsFieldsAndUnquotes) {
  EXPECT_EQ(SplitCsvLine("a,b,,d"), (V{"a", "b", "", "d"}));
  EXPECT_EQ(SplitCsvLine(""), (V{""}));
  // Quoted commas stay in the field; doubled quotes are one quote; CR of a CRLF file is dropped.
  EXPECT_EQ(SplitCsvLine("x,\"a=1;b=2,c\",\"say \"\"hi\"\"\"\r"),
            (V{"x", "a=1;b=2,c", "say \"hi\""}));
}

}  // namespace
}  // namespace moesim
