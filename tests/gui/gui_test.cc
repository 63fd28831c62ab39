// moesim-gui under the offscreen platform: edits reach the charts with the simulate library's
// numbers, bad values show the CLI's message, cancel stops a sweep, and every view's headless
// screenshot is a real picture.
#include <QBarSet>
#include <QChartView>
#include <QComboBox>
#include <QElapsedTimer>
#include <QImage>
#include <QLineEdit>
#include <QLineSeries>
#include <QProcess>
#include <QScatterSeries>
#include <QSet>
#include <QStackedBarSeries>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>

#include "gui/charts.h"
#include "gui/main_window.h"
#include "gui/scenario_form.h"
#include "gui/timeline_widget.h"
#include "proto/scenario_loader.h"
#include "schema/report_schema.h"
#include "sim/step/simulate.h"

using namespace moesim;
using namespace moesim::gui;

namespace {

// Runs the event loop until no job runs (fails the test after `limit_ms`).
bool WaitIdle(MainWindow& w, int limit_ms = 300000) {
  QElapsedTimer t;
  t.start();
  auto busy = [&w]() {
    for (int k = 0; k < kNumJobKinds; ++k) {
      if (w.JobRunning(static_cast<JobKind>(k))) return true;
    }
    return false;
  };
  while (busy()) {
    if (t.elapsed() > limit_ms) return false;
    QCoreApplication::processEvents(QEventLoop::AllEvents, 50);
  }
  QCoreApplication::processEvents();
  return true;
}

double SimulatedStepTime(const std::vector<std::string>& overrides) {
  auto sc = LoadScenario({"", overrides});
  if (!sc.ok()) qFatal("%s", sc.status().message().c_str());
  auto r = SimulateScenario(*sc, {});
  if (!r.ok()) qFatal("%s", r.status().message().c_str());
  return r->step_time_s;
}

// Types `text` into the form's line edit for `path` and presses Return, as a user would.
void Type(MainWindow& w, const QString& path, const QString& text) {
  auto* line = qobject_cast<QLineEdit*>(w.form()->Editor(path));
  QVERIFY2(line != nullptr, qPrintable(path));
  line->selectAll();
  QTest::keyClicks(line, text);
  QTest::keyClick(line, Qt::Key_Return);
}

int DistinctColours(const QImage& image) {
  QSet<QRgb> colours;
  for (int y = 0; y < image.height(); y += 2) {
    for (int x = 0; x < image.width(); x += 2) colours.insert(image.pixel(x, y));
  }
  return static_cast<int>(colours.size());
}

}  // namespace

class GuiTest : public QObject {
  Q_OBJECT

 private slots:
  void EditingAFieldUpdatesTheViewsWithSimulateValues();
  void ExpertsChartPlotsWhatSimulateGives();
  void BadValueShowsTheCliMessageAndKeepsTheCharts();
  void CancelStopsALongSweep();
  void TradeoffClickLoadsThatConfiguration();
  void HeadlessScreenshots_data();
  void HeadlessScreenshots();
  void HeadlessBadInputExitsTwo();
  void ExportsPngSvgCsv();
  void BudgetCsvIsTheSchemaRows();
};

void GuiTest::EditingAFieldUpdatesTheViewsWithSimulateValues() {
  MainWindow w(MOESIM_SOURCE_DIR);
  w.set_jobs(2);
  QVERIFY(w.OpenScenario("").ok());
  w.ShowView(View::kTimeline);
  QVERIFY(WaitIdle(w));
  QVERIFY(w.current_report());
  QCOMPARE(w.current_report()->step_time_s, SimulatedStepTime({}));

  Type(w, "model.moe.capacity_factor", "1.25");
  QCOMPARE(w.doc().overrides(), std::vector<std::string>{"model.moe.capacity_factor=1.25"});
  QVERIFY(WaitIdle(w));
  const double expected = SimulatedStepTime({"model.moe.capacity_factor=1.25"});
  QVERIFY(expected != SimulatedStepTime({}));  // the edit matters, so the check can fail
  QCOMPARE(w.current_report()->step_time_s, expected);
  QCOMPARE(w.timeline_widget()->timeline().step_time_s, expected);
  QVERIFY(!w.timeline_widget()->timeline().bars.empty());

  // The Breakdown chart's last column is the scenario as edited: its stacked parts are the
  // simulate library's breakdown and add up to its step time.
  w.ShowView(View::kBreakdown);
  QVERIFY(WaitIdle(w));
  auto sc = LoadScenario({"", {"model.moe.capacity_factor=1.25"}});
  QVERIFY(sc.ok());
  auto report = SimulateScenario(*sc, {});
  QVERIFY(report.ok());
  QChart* chart = w.chart_view(View::kBreakdown)->chart();
  QCOMPARE(chart->series().size(), 1);
  auto* bars = qobject_cast<QStackedBarSeries*>(chart->series()[0]);
  QVERIFY(bars != nullptr);
  double sum = 0;
  bool saw_compute = false;
  for (QBarSet* set : bars->barSets()) {
    const double v = set->at(set->count() - 1);
    sum += v;
    if (set->label() == "compute") {
      QCOMPARE(v, report->breakdown.compute_s);
      saw_compute = true;
    }
  }
  QVERIFY(saw_compute);
  QVERIFY(std::abs(sum - report->step_time_s) <= 1e-9 * report->step_time_s);
}

void GuiTest::ExpertsChartPlotsWhatSimulateGives() {
  MainWindow w(MOESIM_SOURCE_DIR);
  w.set_jobs(2);
  QVERIFY(w.OpenScenario("", {"model.num_layers=8"}).ok());
  ExpertsSweepSpec spec;
  spec.experts = {16, 64};
  spec.strategies = {"APPLE_3D", "NAIVE_2D"};
  w.StartSweep(spec);
  QVERIFY(WaitIdle(w));
  auto sweep = w.sweep();
  QVERIFY(sweep);
  QChart* chart = w.chart_view(View::kExperts)->chart();
  int checked = 0;
  for (QAbstractSeries* s : chart->series()) {
    auto* line = qobject_cast<QLineSeries*>(s);
    if (line == nullptr || line->name().startsWith("dense")) continue;
    for (const QPointF& p : line->points()) {
      // The point's own overrides, simulated here as `moesim simulate --set ...` would.
      const ExpertsSweep::Best* best = nullptr;
      for (const auto& b : sweep->best) {
        if (QString::fromStdString(b.strategy) == line->name() &&
            b.experts == static_cast<int64_t>(p.x())) {
          best = &b;
        }
      }
      QVERIFY(best != nullptr && best->index >= 0);
      const auto& overrides = sweep->points[static_cast<size_t>(best->index)].overrides;
      QCOMPARE(p.y(), SimulatedStepTime(overrides));
      ++checked;
    }
  }
  QVERIFY2(checked >= 2, "no strategy line plotted");
}

void GuiTest::BadValueShowsTheCliMessageAndKeepsTheCharts() {
  MainWindow w(MOESIM_SOURCE_DIR);
  w.set_jobs(2);
  QVERIFY(w.OpenScenario("").ok());
  w.ShowView(View::kTimeline);
  QVERIFY(WaitIdle(w));
  const auto before = w.current_report();
  QVERIFY(before);

  Type(w, "model.d_model", "-4");
  QVERIFY(WaitIdle(w));
  // What `moesim simulate --set model.d_model=-4` prints after "moesim simulate: ".
  const QString cli = "<default> (--set model.d_model=-4): model.d_model=-4 must be > 0";
  QCOMPARE(QString::fromStdString(LoadScenario({"", {"model.d_model=-4"}}).status().message()),
           cli);
  QLabel* label = w.form()->ErrorLabel("model.d_model");
  QVERIFY(label != nullptr);
  QCOMPARE(label->text(), cli);
  QVERIFY(!label->isHidden());
  QCOMPARE(w.error_text(), cli);
  QCOMPARE(w.current_report(), before);  // the views keep the last valid scenario

  Type(w, "model.d_model", "abc");
  QVERIFY(WaitIdle(w));
  QCOMPARE(w.form()->ErrorLabel("model.d_model")->text(),
           QString("--set model.d_model=abc: \"abc\" is not an integer"));

  Type(w, "model.d_model", "2048");
  QVERIFY(WaitIdle(w));
  QVERIFY(w.form()->ErrorLabel("model.d_model")->isHidden());
  QVERIFY(w.error_text().isEmpty());
  QVERIFY(w.current_report() != before);
}

void GuiTest::CancelStopsALongSweep() {
  MainWindow w(MOESIM_SOURCE_DIR);
  w.set_jobs(1);
  QVERIFY(w.OpenScenario("").ok());
  QVERIFY(WaitIdle(w));
  ExpertsSweepSpec spec;
  spec.experts = {2, 4, 8, 16, 32, 64, 128, 256};
  spec.strategies = {"APPLE_3D", "NAIVE_2D", "PADDED_2D", "MEGATRON", "FSDP", "ZERO1"};
  QSignalSpy finished(&w, &MainWindow::JobFinished);
  w.StartSweep(spec);
  QVERIFY(w.JobRunning(JobKind::kSweep));
  // Cancel at once: waiting first let a machine under load finish the whole sweep before the
  // cancel (the test thread woke seconds late), so nothing was left to cancel.
  QElapsedTimer t;
  t.start();
  w.CancelJobs();
  QVERIFY(WaitIdle(w, 60000));
  QVERIFY2(t.elapsed() < 30000, "cancel took too long");
  auto sweep = w.sweep();
  QVERIFY(sweep);
  QVERIFY(sweep->cancelled);
  QVERIFY2(sweep->finished < sweep->points.size(),
           qPrintable(QString("%1 of %2").arg(sweep->finished).arg(sweep->points.size())));
  bool saw = false;
  for (const auto& args : finished) {
    if (args[0].toInt() == static_cast<int>(JobKind::kSweep)) saw = args[1].toBool();
  }
  QVERIFY(saw);
  QVERIFY(w.chart_view(View::kExperts)->chart()->title().contains("cancelled"));
}

void GuiTest::TradeoffClickLoadsThatConfiguration() {
  MainWindow w(MOESIM_SOURCE_DIR);
  w.set_jobs(2);
  QVERIFY(w.OpenScenario("", {"model.num_layers=8"}).ok());
  ExpertsSweepSpec spec;
  spec.experts = {16};
  spec.strategies = {"APPLE_3D"};
  w.StartSweep(spec);
  QVERIFY(WaitIdle(w));
  QChart* chart = w.chart_view(View::kTradeoff)->chart();
  QScatterSeries* target = nullptr;
  for (QAbstractSeries* s : chart->series()) {
    if (s->name() == "APPLE_3D") target = qobject_cast<QScatterSeries*>(s);
  }
  QVERIFY(target != nullptr && target->count() > 0);
  const QPointF p = target->at(0);

  // The Tradeoff and Experts CSV are `moesim sweep --csv` rows (schema/report_schema.h) led by
  // the view's columns; the plotted point's step time is in its row.
  QTemporaryDir dir;
  for (View v : {View::kTradeoff, View::kExperts}) {
    QVERIFY(w.ExportCsv(dir.filePath("s.csv"), v).ok());
    QFile f(dir.filePath("s.csv"));
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QList<QByteArray> lines = f.readAll().split('\n');
    QByteArray header = v == View::kTradeoff ? "strategy,experts,params_total,overrides"
                                             : "strategy,experts,best,overrides";
    for (const std::string& field : SweepFieldNames()) header += "," + QByteArray(field.c_str());
    QCOMPARE(lines[0], header);
    bool found = false;
    for (const QByteArray& line : lines) {
      const QList<QByteArray> cells = line.split(',');
      if (cells.size() < 6 || cells[0] != "APPLE_3D" || cells[4] != "ok") continue;
      found = found || std::abs(cells[5].toDouble() / p.y() - 1) < 1e-5;
    }
    QVERIFY(found);
  }
  emit target->clicked(p);
  QVERIFY(WaitIdle(w));
  // The document now holds a point of the sweep at that step time.
  auto sc = w.doc().Load();
  QVERIFY(sc.ok());
  QCOMPARE(sc->model.moe.num_experts, int64_t{16});
  QCOMPARE(w.current_report()->step_time_s, p.y());
}

void GuiTest::HeadlessScreenshots_data() {
  QTest::addColumn<QString>("view");
  for (int i = 0; i < kNumViews; ++i)
    QTest::newRow(ViewName(static_cast<View>(i))) << ViewName(static_cast<View>(i));
}

void GuiTest::HeadlessScreenshots() {
  QFETCH(QString, view);
  QTemporaryDir dir;
  const QString out = dir.filePath(view + ".png");
  QProcess p;
  // A smaller model keeps the sweeps short; the pictures are the same kind.
  p.start(MOESIM_GUI_BINARY, {"--screenshot", out, "--view", view, "--size", "1000x640", "--jobs",
                              "2", "--set", "model.num_layers=8"});
  QVERIFY(p.waitForFinished(600000));
  QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
  QImage image(out);
  QVERIFY(!image.isNull());
  QCOMPARE(image.size(), QSize(1000, 640));
  QVERIFY2(DistinctColours(image) > 12, qPrintable(QString::number(DistinctColours(image))));

  // The same view in process: the chart's series hold points.
  MainWindow w(MOESIM_SOURCE_DIR);
  w.set_jobs(2);
  QVERIFY(w.OpenScenario("", {"model.num_layers=8"}).ok());
  const View v = *ParseView(view);
  w.ShowView(v);
  QVERIFY(WaitIdle(w));
  if (v == View::kTimeline) {
    QVERIFY(w.timeline_widget()->timeline().bars.size() > 10);
    QVERIFY(w.timeline_widget()->timeline().lanes.size() >= 2);
    return;
  }
  QChart* chart = w.chart_view(v)->chart();
  QVERIFY(!chart->series().isEmpty());
  int points = 0;
  for (QAbstractSeries* s : chart->series()) {
    if (auto* xy = qobject_cast<QXYSeries*>(s)) points += static_cast<int>(xy->count());
    if (auto* bars = qobject_cast<QAbstractBarSeries*>(s)) {
      for (QBarSet* set : bars->barSets()) {
        for (int i = 0; i < set->count(); ++i) points += set->at(i) > 0 ? 1 : 0;
      }
    }
  }
  QVERIFY2(points >= 3, qPrintable(view + ": " + QString::number(points)));
  QVERIFY(!chart->title().isEmpty());
}

void GuiTest::HeadlessBadInputExitsTwo() {
  QTemporaryDir dir;
  const QString out = dir.filePath("x.png");
  struct Case {
    QStringList args;
    QString message;
  };
  const Case cases[] = {
      {{"--screenshot", out, "--view", "nope"}, "--view nope: expected experts, breakdown"},
      {{"--screenshot", out}, "--screenshot needs --view"},
      {{"--screenshot", out, "--view", "timeline", "/no/such.textproto"},
       "/no/such.textproto: cannot open scenario file"},
      {{"--screenshot", out, "--view", "timeline", "--set", "model.d_model=-4"},
       "moesim-gui: <default> (--set model.d_model=-4): model.d_model=-4 must be > 0"},
      {{"--screenshot", out, "--view", "timeline", "--size", "10x10"}, "--size 10x10"},
  };
  for (const Case& c : cases) {
    QProcess p;
    p.start(MOESIM_GUI_BINARY, c.args);
    QVERIFY(p.waitForFinished(60000));
    const QString err = p.readAllStandardError();
    QVERIFY2(p.exitCode() == 2, qPrintable(c.args.join(' ') + " -> " + err));
    QVERIFY2(err.contains(c.message), qPrintable(err));
    QVERIFY(!QFileInfo::exists(out));
  }
}

void GuiTest::ExportsPngSvgCsv() {
  MainWindow w(MOESIM_SOURCE_DIR);
  w.set_jobs(2);
  QVERIFY(w.OpenScenario("", {"model.num_layers=8"}).ok());
  w.ShowView(View::kTimeline);
  QVERIFY(WaitIdle(w));
  QTemporaryDir dir;
  QVERIFY(w.ExportPng(dir.filePath("t.png"), View::kTimeline, QSize(800, 500)).ok());
  QCOMPARE(QImage(dir.filePath("t.png")).size(), QSize(800, 500));
  QVERIFY(w.ExportSvg(dir.filePath("t.svg"), View::kTimeline).ok());
  QFile svg(dir.filePath("t.svg"));
  QVERIFY(svg.open(QIODevice::ReadOnly));
  QVERIFY(svg.readAll().contains("<svg"));
  QVERIFY(w.ExportCsv(dir.filePath("t.csv"), View::kTimeline).ok());
  QFile csv(dir.filePath("t.csv"));
  QVERIFY(csv.open(QIODevice::ReadOnly));
  const QList<QByteArray> lines = csv.readAll().split('\n');
  // Written by schema/report_schema.h's WriteStepOpsCsv: the step's op records, lane by lane.
  QCOMPARE(lines[0], QByteArray("name,program,stream,stream_name,phase,micro_batch,start_s,end_s,"
                                "is_collective,collective,axes,kernel_class,flops,bytes,"
                                "fraction_of_peak,fp8"));
  QVERIFY(lines.size() > 10);
  for (int i = 1; i < lines.size(); ++i) {
    if (lines[i].isEmpty() || lines[i].contains('"')) continue;  // quoted axes hold commas
    const QList<QByteArray> f = lines[i].split(',');
    QCOMPARE(f.size(), 16);
    QVERIFY(f[6].toDouble() <= f[7].toDouble());  // start_s <= end_s
    QVERIFY(f[8] == "true" || f[8] == "false");   // is_collective
    QCOMPARE(f[9].isEmpty(), f[8] == "false");    // collective only if one
  }

  // Breakdown (WriteBreakdownCsv): the scenario's step report; its parts add up to the step.
  QVERIFY(w.ExportCsv(dir.filePath("b.csv"), View::kBreakdown).ok());
  QFile bd(dir.filePath("b.csv"));
  QVERIFY(bd.open(QIODevice::ReadOnly));
  const QList<QByteArray> bl = bd.readAll().split('\n');
  QVERIFY(
      bl[0].startsWith("label,step_time_s,compute_s,exposed_comm_s,comm_total_s,bubble_s,"
                       "idle_s,compute_by_class."));
  // The scenario as configured is the last column (after the sweep's, if one ran).
  const QByteArray last = bl[bl.size() - 2];  // the file ends with a newline
  QVERIFY(last.startsWith("this scenario,"));
  const QList<QByteArray> bf = last.split(',');
  const double parts = bf[2].toDouble() + bf[3].toDouble() + bf[5].toDouble() + bf[6].toDouble();
  QVERIFY(bf[1].toDouble() > 0);
  QVERIFY(std::abs(parts / bf[1].toDouble() - 1) < 1e-6);
  QVERIFY(!w.ExportCsv(dir.filePath("v.csv"), View::kBudget).ok());  // nothing computed yet

  // The validation view (validation/apple2024.csv): rows with a baseline carry their change.
  w.ShowView(View::kValidation);
  QVERIFY(WaitIdle(w));
  QVERIFY(w.ExportCsv(dir.filePath("val.csv"), View::kValidation).ok());
  QFile val(dir.filePath("val.csv"));
  QVERIFY(val.open(QIODevice::ReadOnly));
  const QList<QByteArray> vl = val.readAll().split('\n');
  // Written by schema/report_schema.h's WriteValidationCsv: the JSON's row and relative fields.
  QCOMPARE(vl[0], QByteArray("id,metric,simulated,measured,error_pct,baseline,"
                             "simulated_pct,measured_pct,diff_pp,source"));
  bool found = false;
  for (const QByteArray& line : vl) {
    if (!line.startsWith("apple-6.4b-64e,")) continue;
    const QList<QByteArray> f = line.split(',');
    QCOMPARE(f[5], QByteArray("apple-6.4b-dense"));
    // 1.92 s against 1.69 s: +13.61%.
    QVERIFY(std::abs(f[7].toDouble() - 100 * (1.92 / 1.69 - 1)) < 1e-6);
    QVERIFY(std::abs(f[8].toDouble() - (f[6].toDouble() - f[7].toDouble())) < 1e-9);
    found = true;
  }
  QVERIFY(found);
}

// The Budget export (BudgetCsv) is schema/report_schema.h's WriteBudgetCsv of every candidate:
// the JSON rows' fields, the dense budget on every line, no dense line of its own.
void GuiTest::BudgetCsvIsTheSchemaRows() {
  BudgetPlan plan;
  plan.params = 1e8;
  plan.dense.report.step_time_s = 0.5;
  plan.budget_s = 1000;
  BudgetCandidate none;
  none.experts = 64;
  none.every_k = 2;
  none.counts.unfit = 5;
  plan.candidates = {none, none};
  plan.candidates[1].experts = 128;
  const QString csv = BudgetCsv(plan);
  const QStringList lines = csv.split('\n');
  QCOMPARE(lines.size(), 4);  // header, two candidates, the empty text after the last newline
  QCOMPARE(lines[0], QString("rank,experts,every_k,configuration,status,step_time_s,compute_s,"
                             "exposed_comm_s,comm_total_s,bubble_s,idle_s,mfu,tokens_per_s,"
                             "tflops_per_device,peak_bytes_per_device,fits,message,params_total,"
                             "params_activated,tokens,unfit,invalid,dense_params,"
                             "dense_step_time_s,budget_s"));
  QCOMPARE(lines[1], QString("1,64,2,,no_feasible_sharding,,,,,,,,,,,,,,,0,5,0,1e+08,0.5,1000"));
  QCOMPARE(lines[2], QString("2,128,2,,no_feasible_sharding,,,,,,,,,,,,,,,0,5,0,1e+08,0.5,1000"));
}

QTEST_MAIN(GuiTest)
#include "gui_test.moc"
