#include "report/plots.h"

#include <QtCharts/QBarCategoryAxis>
#include <QtCharts/QBarSet>
#include <QtCharts/QChart>
#include <QtCharts/QHorizontalBarSeries>
#include <QtCharts/QLineSeries>
#include <QtCharts/QLogValueAxis>
#include <QtCharts/QScatterSeries>
#include <QtCharts/QValueAxis>
#include <QtGui/QColor>
#include <QtGui/QImage>
#include <QtGui/QPainter>
#include <QtWidgets/QApplication>
#include <QtWidgets/QGraphicsScene>
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

namespace moesim::report {
namespace {

// One application object per process, created on first use.
void EnsureApp() {
  if (QApplication::instance() != nullptr) return;
  if (qgetenv("QT_QPA_PLATFORM").isEmpty()) qputenv("QT_QPA_PLATFORM", "offscreen");
  static int argc = 1;
  static char name[] = "moesim";
  static char* argv[] = {name, nullptr};
  static QApplication app(argc, argv);
}

Status Save(QChart* chart, const std::string& path, int width, int height) {
  QGraphicsScene scene;
  scene.addItem(chart);  // the scene owns the chart from here
  chart->resize(width, height);
  QImage image(width, height, QImage::Format_ARGB32);
  image.fill(Qt::white);
  {
    QPainter painter(&image);
    painter.setRenderHint(QPainter::Antialiasing);
    scene.render(&painter, QRectF(0, 0, width, height), QRectF(0, 0, width, height));
  }
  if (!image.save(QString::fromStdString(path), "PNG")) {
    return Status::InvalidInput(path + ": cannot write PNG");
  }
  return Status::Ok();
}

QAbstractAxis* MakeAxis(bool log, const std::string& title, double lo, double hi) {
  if (log) {
    auto* a = new QLogValueAxis();
    a->setBase(10);
    a->setLabelFormat("%g");
    a->setMinorTickCount(-1);
    a->setRange(lo, hi);
    a->setTitleText(QString::fromStdString(title));
    return a;
  }
  auto* a = new QValueAxis();
  a->setRange(lo, hi);
  a->setLabelFormat("%g");
  a->setTitleText(QString::fromStdString(title));
  return a;
}

}  // namespace

Status WriteScatterPng(const std::string& path, const Axes& axes, const std::vector<Series>& series,
                       int width, int height) {
  EnsureApp();
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series) {
    for (const auto& [x, y] : s.points) {
      if (axes.log && (!(x > 0) || !(y > 0))) {
        return Status::InvalidInput(path + ": series \"" + s.name +
                                    "\" has a value <= 0 on a log chart");
      }
      lo = std::min({lo, x, y});
      hi = std::max({hi, x, y});
    }
  }
  if (!(hi >= lo)) return Status::InvalidInput(path + ": nothing to plot");
  if (axes.log) {
    lo /= 1.5;
    hi *= 1.5;
  } else {
    const double pad = 0.05 * (hi - lo + (hi == lo ? 1 : 0));
    lo = std::min(0.0, lo - pad);
    hi += pad;
  }
  auto chart = std::make_unique<QChart>();
  chart->setTitle(QString::fromStdString(axes.title));
  QAbstractAxis* ax = MakeAxis(axes.log, axes.x_title, lo, hi);
  QAbstractAxis* ay = MakeAxis(axes.log, axes.y_title, lo, hi);
  chart->addAxis(ax, Qt::AlignBottom);
  chart->addAxis(ay, Qt::AlignLeft);
  if (axes.identity_line) {
    auto* line = new QLineSeries();
    line->setName("y = x");
    line->setColor(Qt::gray);
    line->append(lo, lo);
    line->append(hi, hi);
    chart->addSeries(line);
    line->attachAxis(ax);
    line->attachAxis(ay);
  }
  // Distinct colours for up to 8 series (Qt's theme repeats after 5).
  static const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  size_t index = 0;
  for (const Series& s : series) {
    auto* sc = new QScatterSeries();
    sc->setName(QString::fromStdString(s.name));
    sc->setMarkerSize(9);
    sc->setColor(QColor(kPalette[index++ % 8]));
    sc->setBorderColor(Qt::transparent);
    for (const auto& [x, y] : s.points) sc->append(x, y);
    chart->addSeries(sc);
    sc->attachAxis(ax);
    sc->attachAxis(ay);
  }
  return Save(chart.release(), path, width, height);
}

Status WriteBarsPng(const std::string& path, const Axes& axes,
                    const std::vector<std::string>& categories, const std::vector<BarSet>& sets,
                    int width, int height) {
  EnsureApp();
  if (categories.empty() || sets.empty()) return Status::InvalidInput(path + ": nothing to plot");
  double lo = 0, hi = 0;
  // Horizontal bars: category names (op classes) read in full on the left axis.
  auto* bars = new QHorizontalBarSeries();
  for (const BarSet& s : sets) {
    if (s.values.size() != categories.size()) {
      return Status::Internal(path + ": bar set \"" + s.name + "\" has " +
                              std::to_string(s.values.size()) + " values for " +
                              std::to_string(categories.size()) + " categories");
    }
    auto* set = new QBarSet(QString::fromStdString(s.name));
    // Qt draws the first category at the bottom; reversed, the list reads top-down.
    for (auto it = s.values.rbegin(); it != s.values.rend(); ++it) {
      *set << *it;
      lo = std::min(lo, *it);
      hi = std::max(hi, *it);
    }
    bars->append(set);
  }
  auto chart = std::make_unique<QChart>();
  chart->setTitle(QString::fromStdString(axes.title));
  chart->addSeries(bars);
  auto* cat = new QBarCategoryAxis();
  for (auto it = categories.rbegin(); it != categories.rend(); ++it) {
    cat->append(QString::fromStdString(*it));
  }
  cat->setTitleText(QString::fromStdString(axes.x_title));
  cat->setTruncateLabels(false);
  const double pad = 0.08 * (hi - lo + (hi == lo ? 1 : 0));
  auto* val = new QValueAxis();
  val->setRange(lo < 0 ? lo - pad : 0, hi > 0 ? hi + pad : 0);
  val->setLabelFormat("%.0f");
  val->applyNiceNumbers();
  val->setTitleText(QString::fromStdString(axes.y_title));
  chart->addAxis(cat, Qt::AlignLeft);
  chart->addAxis(val, Qt::AlignBottom);
  bars->attachAxis(cat);
  bars->attachAxis(val);
  const int h = std::max(height, 120 + 22 * static_cast<int>(categories.size()));
  return Save(chart.release(), path, width, h);
}

}  // namespace moesim::report
