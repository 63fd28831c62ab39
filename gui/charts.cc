#include "gui/charts.h"

#include <QBarCategoryAxis>
#include <QBarSet>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QStackedBarSeries>
#include <QValueAxis>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "schema/report_schema.h"

namespace moesim::gui {
namespace {

const QColor kPalette[] = {QColor(0x1f, 0x77, 0xb4), QColor(0xff, 0x7f, 0x0e),
                           QColor(0x2c, 0xa0, 0x2c), QColor(0x94, 0x67, 0xbd),
                           QColor(0x8c, 0x56, 0x4b), QColor(0xe3, 0x77, 0xc2),
                           QColor(0x17, 0xbe, 0xcf), QColor(0xbc, 0xbd, 0x22),
                           QColor(0x7f, 0x7f, 0x7f), QColor(0xd6, 0x27, 0x28)};
QColor Palette(size_t i) { return kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))]; }
const QColor kInfeasible(0xd6, 0x27, 0x28);
const QColor kGrey(0xb0, 0xb0, 0xb0);

QChart* NewChart(const QString& title) {
  auto* c = new QChart;
  c->setTitle(title);
  QFont f = c->titleFont();
  f.setPointSizeF(f.pointSizeF() * 1.2);
  f.setBold(true);
  c->setTitleFont(f);
  c->setAnimationOptions(QChart::NoAnimation);
  c->legend()->setAlignment(Qt::AlignBottom);
  c->setBackgroundRoundness(0);
  return c;
}

// The point's own overrides beyond the document's (what a click loads, what CSV shows).
QString Overrides(const PointResult& p) {
  QStringList o;
  for (const auto& s : p.overrides) o << QString::fromStdString(s);
  return o.join(';');
}

QString Label(const ExpertsSweep::Best& b) {
  return b.experts == 0 ? QString("dense") : QString::number(b.experts) + "E";
}

const char* Status(const PointResult& p) {
  return p.cancelled ? "cancelled" : OutcomeName(p.outcome);
}

void Attach(QChart* c, QAbstractSeries* s, QAbstractAxis* x, QAbstractAxis* y) {
  c->addSeries(s);
  s->attachAxis(x);
  s->attachAxis(y);
}

QString MeshText(const Scenario& sc) {
  const Mesh& m = sc.sharding.mesh;
  return QString("(%1,%2,%3,%4)")
      .arg(m[MeshAxis::kData])
      .arg(m[MeshAxis::kExpert])
      .arg(m[MeshAxis::kModel])
      .arg(m[MeshAxis::kPipeline]);
}

QString CancelNote(const ExpertsSweep& s) {
  return s.cancelled ? QString(" (cancelled: %1 of %2 points)").arg(s.finished).arg(s.points.size())
                     : QString();
}

}  // namespace

QChart* MakeExpertsChart(const ExpertsSweep& s, const QString& name) {
  QChart* c = NewChart("Step time vs experts: " + name + ", each strategy at its fastest mesh" +
                       CancelNote(s));
  auto* x = new QLogValueAxis;
  x->setBase(2);
  x->setLabelFormat("%d");
  x->setTitleText("experts per MoE layer");
  auto* y = new QValueAxis;
  y->setTitleText("step time (s)");
  c->addAxis(x, Qt::AlignBottom);
  c->addAxis(y, Qt::AlignLeft);
  double ymax = 0;
  const double emin =
      s.spec.experts.empty()
          ? 1
          : static_cast<double>(*std::min_element(s.spec.experts.begin(), s.spec.experts.end()));
  const double emax =
      s.spec.experts.empty()
          ? 2
          : static_cast<double>(*std::max_element(s.spec.experts.begin(), s.spec.experts.end()));
  auto* unfit = new QScatterSeries;
  unfit->setName("does not fit in memory (fastest unfit mesh)");
  unfit->setMarkerShape(QScatterSeries::MarkerShapeRectangle);
  unfit->setMarkerSize(13);
  unfit->setColor(kInfeasible);
  unfit->setBorderColor(Qt::black);
  size_t color = 0;
  for (const std::string& strategy : s.spec.strategies) {
    auto* line = new QLineSeries;
    line->setName(QString::fromStdString(strategy));
    line->setPointsVisible(true);
    QPen pen(Palette(color++));
    pen.setWidthF(2.5);
    line->setPen(pen);
    for (const auto& b : s.best) {
      if (b.strategy != strategy || b.index < 0) continue;
      const double t = s.points[static_cast<size_t>(b.index)].report.step_time_s;
      ymax = std::max(ymax, t);
      if (b.feasible) {
        line->append(static_cast<double>(b.experts), t);
      } else {
        unfit->append(static_cast<double>(b.experts), t);
      }
    }
    Attach(c, line, x, y);
  }
  const auto& dense = s.best.front();
  if (dense.index >= 0) {
    const PointResult& p = s.points[static_cast<size_t>(dense.index)];
    auto* ref = new QLineSeries;
    ref->setName(QString("dense baseline (%1 %2%3)")
                     .arg(QString::fromStdString(s.scenario_strategy), MeshText(p.scenario),
                          dense.feasible ? "" : ", does not fit"));
    QPen pen(Qt::black);
    pen.setStyle(Qt::DashLine);
    pen.setWidthF(2);
    ref->setPen(pen);
    ref->append(emin, p.report.step_time_s);
    ref->append(emax, p.report.step_time_s);
    ymax = std::max(ymax, p.report.step_time_s);
    Attach(c, ref, x, y);
  }
  Attach(c, unfit, x, y);
  QStringList no_mesh;
  for (const auto& b : s.best) {
    if (b.index < 0 && !b.strategy.empty()) {
      no_mesh << QString("%1 at %2E").arg(QString::fromStdString(b.strategy)).arg(b.experts);
    }
  }
  if (!no_mesh.isEmpty()) {
    // A gap in a line would otherwise read as a lost point.
    c->setTitle(c->title() + "<br><span style='font-weight:normal'>no valid mesh: " +
                no_mesh.join(", ") + "</span>");
  }
  x->setRange(emin / 1.25, emax * 1.25);
  y->setRange(0, ymax > 0 ? ymax * 1.1 : 1);
  y->applyNiceNumbers();
  return c;
}

namespace {

// Sweep rows (schema/report_schema.h, the rows of `moesim sweep --csv`) of every point, with
// `columns` first: "strategy", "experts", then `extra` (name, value of point i), "overrides".
QString SweepPointsCsv(
    const ExpertsSweep& s,
    const std::vector<std::pair<std::string, std::function<std::string(size_t)>>>& extra) {
  std::vector<std::string> columns = {"strategy", "experts"};
  for (const auto& [name, value] : extra) columns.push_back(name);
  columns.push_back("overrides");
  std::ostringstream out;
  WriteSweepCsvHeader(columns, out);
  for (size_t i = 0; i < s.points.size(); ++i) {
    const PointResult& p = s.points[i];
    SweepRow row = MakeSweepRow(p, {});
    row.values = {s.point_strategy[i].empty() ? "dense" : s.point_strategy[i],
                  std::to_string(s.point_experts[i])};
    for (const auto& [name, value] : extra) row.values.push_back(value(i));
    row.values.push_back(Overrides(p).toStdString());
    if (p.cancelled) {
      row.status = Status(p);
      row.simulated = false;
    }
    WriteSweepCsvRow(row, out);
  }
  return QString::fromStdString(out.str());
}

}  // namespace

QString ExpertsCsv(const ExpertsSweep& s) {
  std::set<int> best;
  for (const auto& b : s.best) best.insert(b.index);
  return SweepPointsCsv(
      s,
      {{"best", [&best](size_t i) { return best.count(static_cast<int>(i)) ? "true" : "false"; }}});
}

namespace {

struct BreakdownColumn {
  QString label;
  const SimReport* report;
};

std::vector<BreakdownColumn> BreakdownColumns(const ExpertsSweep* s, const SimReport* current) {
  std::vector<BreakdownColumn> cols;
  if (s != nullptr) {
    for (const auto& b : s->best) {
      if (b.index < 0 || (!b.strategy.empty() && b.strategy != s->scenario_strategy)) continue;
      const PointResult& p = s->points[static_cast<size_t>(b.index)];
      cols.push_back(
          {Label(b) + " " + MeshText(p.scenario).mid(1).chopped(1) + (b.feasible ? "" : " unfit"),
           &p.report});
    }
  }
  if (current != nullptr) cols.push_back({"this scenario", current});
  return cols;
}

// Components in stacking order; the exposed communication split by collective and mesh axes.
std::vector<std::pair<QString, std::vector<double>>> BreakdownParts(
    const std::vector<BreakdownColumn>& cols) {
  std::set<std::string> labels;
  for (const auto& c : cols) {
    for (const auto& [label, v] : c.report->breakdown.exposed_by_collective) labels.insert(label);
  }
  std::vector<std::pair<QString, std::vector<double>>> parts;
  auto add = [&](const QString& name, auto get) {
    std::vector<double> v;
    bool any = false;
    for (const auto& c : cols) {
      v.push_back(get(c.report->breakdown));
      any = any || v.back() > 0;
    }
    if (any) parts.emplace_back(name, std::move(v));
  };
  add("compute", [](const Breakdown& b) { return b.compute_s; });
  for (const std::string& l : labels) {
    add(QString::fromStdString(l), [&l](const Breakdown& b) {
      auto it = b.exposed_by_collective.find(l);
      return it == b.exposed_by_collective.end() ? 0.0 : it->second;
    });
  }
  // Exposed communication the per-collective split does not attribute, if any.
  add("other communication", [](const Breakdown& b) {
    double sum = 0;
    for (const auto& [l, v] : b.exposed_by_collective) sum += v;
    return std::max(0.0, b.exposed_comm_s - sum) > 1e-12 ? b.exposed_comm_s - sum : 0.0;
  });
  add("pipeline bubble", [](const Breakdown& b) { return b.bubble_s; });
  add("idle", [](const Breakdown& b) { return b.idle_s; });
  return parts;
}

}  // namespace

QChart* MakeBreakdownChart(const ExpertsSweep* s, const SimReport* current, const QString& name) {
  const QString strategy = s ? QString::fromStdString(s->scenario_strategy) : QString();
  QChart* c = NewChart("Step time breakdown: " + name +
                       (s ? ", " + strategy + " at its fastest mesh per expert count" : QString()) +
                       (s ? CancelNote(*s) : QString()));
  const auto cols = BreakdownColumns(s, current);
  auto* series = new QStackedBarSeries;
  size_t color = 0;
  for (const auto& [part, values] : BreakdownParts(cols)) {
    auto* set = new QBarSet(part);
    for (double v : values) *set << v;
    set->setColor(part == "compute" ? QColor(0x1f, 0x77, 0xb4)
                  : part == "idle"  ? kGrey
                                    : Palette(++color));
    series->append(set);
  }
  series->setBarWidth(0.6);
  auto* x = new QBarCategoryAxis;
  for (const auto& col : cols) x->append(col.label);
  x->setTitleText("experts, mesh (data, expert, model, pipeline)");
  auto* y = new QValueAxis;
  y->setTitleText("seconds per step (communication: the exposed part)");
  c->addAxis(x, Qt::AlignBottom);
  c->addAxis(y, Qt::AlignLeft);
  Attach(c, series, x, y);
  double ymax = 0;
  for (const auto& col : cols) ymax = std::max(ymax, col.report->step_time_s);
  y->setRange(0, ymax > 0 ? ymax * 1.05 : 1);
  y->applyNiceNumbers();
  // Below the plot: the columns need the width for their mesh labels.
  c->legend()->setAlignment(Qt::AlignBottom);
  return c;
}

QString BreakdownCsv(const ExpertsSweep* s, const SimReport* current) {
  std::vector<std::pair<std::string, const SimReport*>> reports;
  for (const auto& col : BreakdownColumns(s, current)) {
    reports.emplace_back(QString(col.label).replace('\n', ' ').toStdString(), col.report);
  }
  std::ostringstream out;
  WriteBreakdownCsv(reports, out);
  return QString::fromStdString(out.str());
}

QChart* MakeTradeoffChart(const ExpertsSweep& s, bool x_memory, const QString& name,
                          std::vector<TradeoffSeries>* out) {
  QChart* c =
      NewChart(QString("Step time vs %1: %2, every mesh of the sweep%3")
                   .arg(x_memory ? "memory per device" : "total parameters", name, CancelNote(s)));
  QAbstractAxis* xa = nullptr;
  if (x_memory) {
    auto* x = new QValueAxis;
    x->setTitleText("peak memory per device (GiB)");
    xa = x;
  } else {
    auto* x = new QLogValueAxis;
    x->setBase(2);
    x->setLabelFormat("%.3g");
    x->setTitleText("total parameters (billions)");
    xa = x;
  }
  auto* y = new QValueAxis;
  y->setTitleText("step time (s)");
  c->addAxis(xa, Qt::AlignBottom);
  c->addAxis(y, Qt::AlignLeft);
  std::vector<double> xs(s.points.size()), ys(s.points.size());
  std::vector<bool> feasible(s.points.size()), plotted(s.points.size());
  double xmin = std::numeric_limits<double>::max(), xmax = 0, ymax = 0;
  for (size_t i = 0; i < s.points.size(); ++i) {
    const PointResult& p = s.points[i];
    plotted[i] =
        !p.cancelled && p.outcome != PointResult::Outcome::kInvalid && p.report.step_time_s > 0;
    feasible[i] = plotted[i] && p.outcome == PointResult::Outcome::kOk;
    xs[i] = x_memory ? p.report.memory.peak_bytes / (1024.0 * 1024 * 1024)
                     : p.report.cost.params.total / 1e9;
    ys[i] = p.report.step_time_s;
    if (!plotted[i]) continue;
    xmin = std::min(xmin, xs[i]);
    xmax = std::max(xmax, xs[i]);
    ymax = std::max(ymax, ys[i]);
  }
  auto add = [&](const QString& label, QColor color, double size, auto pick) {
    TradeoffSeries ts;
    ts.series = new QScatterSeries;
    ts.series->setName(label);
    ts.series->setColor(color);
    ts.series->setBorderColor(color.darker(130));
    ts.series->setMarkerSize(size);
    for (size_t i = 0; i < s.points.size(); ++i) {
      if (!plotted[i] || !pick(i)) continue;
      ts.series->append(xs[i], ys[i]);
      ts.points.push_back(i);
    }
    Attach(c, ts.series, xa, y);
    out->push_back(std::move(ts));
  };
  add("does not fit in memory", kGrey, 7, [&](size_t i) { return !feasible[i]; });
  add("dense", Qt::black, 10, [&](size_t i) { return feasible[i] && s.point_experts[i] == 0; });
  size_t color = 0;
  for (const std::string& strategy : s.spec.strategies) {
    add(QString::fromStdString(strategy), Palette(color++), 9, [&](size_t i) {
      return feasible[i] && s.point_experts[i] > 0 && s.point_strategy[i] == strategy;
    });
  }
  auto* front = new QLineSeries;
  front->setName("Pareto front");
  QPen pen(QColor(0xd6, 0x27, 0x28));
  pen.setWidthF(2);
  front->setPen(pen);
  for (size_t i : ParetoFront(xs, ys, feasible, !x_memory)) front->append(xs[i], ys[i]);
  Attach(c, front, xa, y);
  if (xmax > 0) {
    if (x_memory) {
      static_cast<QValueAxis*>(xa)->setRange(0, xmax * 1.05);
      static_cast<QValueAxis*>(xa)->applyNiceNumbers();
    } else {
      static_cast<QLogValueAxis*>(xa)->setRange(xmin / 1.5, xmax * 1.5);
    }
  }
  y->setRange(0, ymax > 0 ? ymax * 1.05 : 1);
  y->applyNiceNumbers();
  return c;
}

QString TradeoffCsv(const ExpertsSweep& s) {
  return SweepPointsCsv(s, {{"params_total", [&s](size_t i) {
                               char buf[32];
                               std::snprintf(buf, sizeof(buf), "%.6g",
                                             s.points[i].report.cost.params.total);
                               return std::string(buf);
                             }}});
}

QChart* MakeValidationChart(const ValidationReport& r, const QString& set_name) {
  QChart* c = NewChart(QString("Simulated vs measured: %1, MAPE %2% over %3 rows%4")
                           .arg(set_name)
                           .arg(r.mape_pct, 0, 'f', 1)
                           .arg(r.results.size())
                           .arg(r.cancelled ? " (cancelled)" : ""));
  auto* x = new QLogValueAxis;
  x->setBase(10);
  x->setLabelFormat("%.3g");
  x->setTitleText("measured");
  auto* y = new QLogValueAxis;
  y->setBase(10);
  y->setLabelFormat("%.3g");
  y->setTitleText("simulated");
  c->addAxis(x, Qt::AlignBottom);
  c->addAxis(y, Qt::AlignLeft);
  double lo = std::numeric_limits<double>::max(), hi = 0;
  std::map<std::string, QScatterSeries*> by_metric;
  size_t color = 0;
  for (const auto& v : r.results) {
    auto& series = by_metric[v.row.metric];
    if (series == nullptr) {
      series = new QScatterSeries;
      series->setName(QString::fromStdString(v.row.metric));
      series->setColor(Palette(color++));
      series->setMarkerSize(11);
    }
    series->append(v.row.measured, v.simulated);
    lo = std::min({lo, v.row.measured, v.simulated});
    hi = std::max({hi, v.row.measured, v.simulated});
  }
  if (hi <= 0) {
    lo = 0.1;
    hi = 10;
  }
  lo /= 1.5;
  hi *= 1.5;
  auto line = [&](const QString& label, double factor, Qt::PenStyle style, QColor pen_color) {
    auto* l = new QLineSeries;
    l->setName(label);
    QPen pen(pen_color);
    pen.setStyle(style);
    pen.setWidthF(1.5);
    l->setPen(pen);
    l->append(lo, lo * factor);
    l->append(hi, hi * factor);
    Attach(c, l, x, y);
  };
  line("y = x", 1.0, Qt::SolidLine, Qt::black);
  line("+10%", 1.1, Qt::DashLine, QColor(0x60, 0x60, 0x60));
  line("-10%", 0.9, Qt::DashLine, QColor(0x60, 0x60, 0x60));
  for (auto& [metric, series] : by_metric) Attach(c, series, x, y);
  x->setRange(lo, hi);
  y->setRange(lo, hi);
  return c;
}

QString ValidationCsv(const ValidationReport& r) {
  std::ostringstream out;
  WriteValidationCsv(r, out);
  return QString::fromStdString(out.str());
}

QChart* MakeBudgetChart(const BudgetPlan& plan, const QString& name) {
  QChart* c = NewChart(QString("Tokens in the dense model's Chinchilla budget (%1 h): %2%3")
                           .arg(plan.budget_s / 3600, 0, 'f', 2)
                           .arg(name)
                           .arg(plan.cancelled ? " (cancelled)" : ""));
  auto* dense = new QBarSet("dense, 20 tokens/parameter");
  auto* moe = new QBarSet("MoE at its fastest feasible sharding");
  dense->setColor(QColor(0x40, 0x40, 0x40));
  moe->setColor(Palette(0));
  auto* x = new QBarCategoryAxis;
  x->append("dense");
  *dense << 20 * plan.params / 1e9;
  *moe << 0;
  double ymax = 20 * plan.params / 1e9;
  for (const auto& cand : plan.candidates) {
    x->append(QString("%1E, every %2%3")
                  .arg(cand.experts)
                  .arg(cand.every_k)
                  .arg(cand.best ? "" : " (none fits)"));
    *dense << 0;
    *moe << cand.tokens / 1e9;
    ymax = std::max(ymax, cand.tokens / 1e9);
  }
  auto* series = new QStackedBarSeries;
  series->append(dense);
  series->append(moe);
  series->setBarWidth(0.6);
  auto* y = new QValueAxis;
  y->setTitleText("tokens trained (billions)");
  c->addAxis(x, Qt::AlignBottom);
  c->addAxis(y, Qt::AlignLeft);
  Attach(c, series, x, y);
  y->setRange(0, ymax > 0 ? ymax * 1.1 : 1);
  y->applyNiceNumbers();
  return c;
}

QString BudgetCsv(const BudgetPlan& plan) {
  std::ostringstream out;
  WriteBudgetCsv(MakeBudgetRows(plan, plan.candidates.size()), out);
  return QString::fromStdString(out.str());
}

QString TimelineCsv(const Timeline& t) {
  std::vector<OpRecord> shown;
  for (const auto& b : t.bars) {
    if (static_cast<size_t>(b.op) < t.ops.size()) shown.push_back(t.ops[static_cast<size_t>(b.op)]);
  }
  std::ostringstream out;
  WriteStepOpsCsv(shown, out);
  return QString::fromStdString(out.str());
}

}  // namespace moesim::gui
