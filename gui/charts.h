// charts.h
//
// Qt Charts of the views' data (view_data.h), and the same data as CSV. Charts are built anew
// for each result (QChartView takes ownership), so a view never shows a mix of two scenarios.
#pragma once

#include <QChart>
#include <QScatterSeries>
#include <QString>
#include <vector>

#include "gui/view_data.h"
#include "sim/planner/budget.h"
#include "sim/planner/validation_set.h"

namespace moesim::gui {

QChart* MakeExpertsChart(const ExpertsSweep& sweep, const QString& scenario_name);
// Experts and Tradeoff CSV: the sweep rows of `moesim sweep --csv` (schema/report_schema.h,
// docs/schema.md) of every point, led by strategy, experts, the view's column (best: the
// point is its line's fastest; params_total: total parameters, the chart's x) and overrides.
QString ExpertsCsv(const ExpertsSweep& sweep);

// Stacked bars: the dense baseline and each expert count at the scenario's strategy's fastest
// mesh (from `sweep`, may be null), then the scenario as configured (`current`, may be null).
QChart* MakeBreakdownChart(const ExpertsSweep* sweep, const SimReport* current,
                           const QString& scenario_name);
// CSV: the same columns' step-report breakdowns (WriteBreakdownCsv, schema/report_schema.h),
// labelled as the chart's columns.
QString BreakdownCsv(const ExpertsSweep* sweep, const SimReport* current);

// Scatter of every sweep point. `series_points` receives, per scatter series, the sweep point
// index of each plotted point (for clicks).
struct TradeoffSeries {
  QScatterSeries* series = nullptr;
  std::vector<size_t> points;
};
QChart* MakeTradeoffChart(const ExpertsSweep& sweep, bool x_memory, const QString& scenario_name,
                          std::vector<TradeoffSeries>* series_points);
QString TradeoffCsv(const ExpertsSweep& sweep);

QChart* MakeValidationChart(const ValidationReport& report, const QString& set_name);
// CSV: the validation rows (WriteValidationCsv, schema/report_schema.h).
QString ValidationCsv(const ValidationReport& report);

QChart* MakeBudgetChart(const BudgetPlan& plan, const QString& scenario_name);
// CSV of the chart's candidates (view data: no report of the schema covers the budget plan).
QString BudgetCsv(const BudgetPlan& plan);

// CSV: the ops of the lanes shown, as the report schema's op records (WriteStepOpsCsv,
// schema/report_schema.h; `timeline.ops`), in the bars' order.
QString TimelineCsv(const Timeline& timeline);

}  // namespace moesim::gui
