// plots.h
//
// PNG charts for `moesim report`, drawn with Qt6 Charts without a display (the offscreen
// platform is selected when QT_QPA_PLATFORM is unset). Only this library links Qt: it is built
// when Qt6 Charts is found, and `moesim report` with it.
// Thread safety: call from one thread (Qt's application object is created on first use).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace moesim::report {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y)
};

struct Axes {
  std::string title, x_title, y_title;
  bool log = false;            // both axes logarithmic (REQUIRES: every value > 0)
  bool identity_line = false;  // draw y = x over the data's range
};

// A scatter chart of `series` (one colour each) to a PNG of width x height pixels.
Status WriteScatterPng(const std::string& path, const Axes& axes, const std::vector<Series>& series,
                       int width = 900, int height = 650);

struct BarSet {
  std::string name;
  std::vector<double> values;  // one per category
};

// Horizontal bars, one row per category (first on top), one bar per set; the image grows
// with the number of categories.
Status WriteBarsPng(const std::string& path, const Axes& axes,
                    const std::vector<std::string>& categories, const std::vector<BarSet>& sets,
                    int width = 1000, int height = 400);

}  // namespace moesim::report
