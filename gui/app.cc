#include "gui/app.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <cstring>
#include <iostream>

#include "gui/main_window.h"

namespace moesim::gui {
namespace {

int Fail(const QString& message, int code = 2) {
  std::cerr << "moesim-gui: " << message.toStdString() << "\n";
  return code;
}

// scenarios/ and validation/ of the source tree, else of the working directory.
QString SourceDir() {
  const QString env = qEnvironmentVariable("MOESIM_SOURCE_DIR");
  if (!env.isEmpty()) return env;
#ifdef MOESIM_SOURCE_DIR
  if (QFileInfo::exists(QString(MOESIM_SOURCE_DIR) + "/scenarios")) return MOESIM_SOURCE_DIR;
#endif
  return QDir::currentPath();
}

}  // namespace

int RunApp(int argc, char** argv) {
  bool headless = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--screenshot") == 0 ||
        std::strncmp(argv[i], "--screenshot=", 13) == 0) {
      headless = true;
    }
  }
  if (headless && qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) {
    qputenv("QT_QPA_PLATFORM", "offscreen");
  }
  QApplication app(argc, argv);
  QApplication::setApplicationName("moesim-gui");
  QCommandLineParser parser;
  parser.setApplicationDescription(
      "Explore MoE step-time trade-offs with moesim's simulator (the same libraries as `moesim`).");
  parser.addHelpOption();
  parser.addPositionalArgument("SCENARIO", "Scenario file (none = the built-in default)",
                               "[SCENARIO]");
  const QCommandLineOption set_opt("set", "Override a scalar field, as `moesim --set`",
                                   "PATH=VALUE");
  const QCommandLineOption shot_opt("screenshot", "Render VIEW to OUT.png offscreen and exit",
                                    "OUT.png");
  const QCommandLineOption view_opt(
      "view", "experts | breakdown | tradeoff | timeline | validation | budget", "VIEW");
  const QCommandLineOption size_opt("size", "Screenshot size (default 1280x800)", "WxH",
                                    "1280x800");
  const QCommandLineOption validation_opt("validation", "Validation set for the Validation view",
                                          "SET.csv");
  const QCommandLineOption jobs_opt("jobs", "Parallel simulations (default: all cores)", "N");
  parser.addOptions({set_opt, shot_opt, view_opt, size_opt, validation_opt, jobs_opt});
  if (!parser.parse(QApplication::arguments())) return Fail(parser.errorText());
  if (parser.isSet("help")) {
    std::cout << parser.helpText().toStdString();
    return 0;
  }
  const QStringList positional = parser.positionalArguments();
  if (positional.size() > 1) {
    return Fail("expected at most one SCENARIO, got " + positional.join(' '));
  }
  std::optional<View> view;
  if (parser.isSet(view_opt)) {
    view = ParseView(parser.value(view_opt));
    if (!view) {
      return Fail("--view " + parser.value(view_opt) +
                  ": expected experts, breakdown, tradeoff, timeline, validation or budget");
    }
  }
  if (headless && !view) return Fail("--screenshot needs --view");
  QSize size;
  {
    const QStringList wh = parser.value(size_opt).split('x');
    bool ok_w = false, ok_h = false;
    if (wh.size() == 2) size = QSize(wh[0].toInt(&ok_w), wh[1].toInt(&ok_h));
    if (!ok_w || !ok_h || size.width() < 200 || size.height() < 150 || size.width() > 8000 ||
        size.height() > 8000) {
      return Fail("--size " + parser.value(size_opt) + ": expected WxH, 200x150 to 8000x8000");
    }
  }
  int jobs = 0;
  if (parser.isSet(jobs_opt)) {
    bool ok = false;
    jobs = parser.value(jobs_opt).toInt(&ok);
    if (!ok || jobs < 1) return Fail("--jobs " + parser.value(jobs_opt) + ": expected N >= 1");
  }
  std::vector<std::string> sets;
  for (const QString& s : parser.values(set_opt)) sets.push_back(s.toStdString());

  MainWindow window(SourceDir());
  if (jobs > 0) window.set_jobs(jobs);
  if (parser.isSet(validation_opt)) {
    const Status st = window.OpenValidationSet(parser.value(validation_opt));
    if (!st.ok()) return Fail(QString::fromStdString(st.message()));
  }
  const Status st = window.OpenScenario(positional.isEmpty() ? QString() : positional[0], sets);
  if (!headless) {
    if (!st.ok()) std::cerr << "moesim-gui: " << st.message() << "\n";
    if (view) window.ShowView(*view);
    window.show();
    return QApplication::exec();
  }
  if (!st.ok()) return Fail(QString::fromStdString(st.message()), st.exit_code());
  window.ShowView(*view);
  auto busy = [&window]() {
    for (int k = 0; k < kNumJobKinds; ++k) {
      if (window.JobRunning(static_cast<JobKind>(k))) return true;
    }
    return false;
  };
  while (busy()) QApplication::processEvents(QEventLoop::WaitForMoreEvents, 100);
  QApplication::processEvents();
  JobKind needed = JobKind::kCurrent;
  if (*view == View::kExperts || *view == View::kTradeoff || *view == View::kBreakdown) {
    needed = JobKind::kSweep;
  }
  if (*view == View::kValidation) needed = JobKind::kValidation;
  if (*view == View::kBudget) needed = JobKind::kBudget;
  const QString error = window.last_job_error(needed);
  if (!error.isEmpty()) return Fail(error);
  if (*view == View::kValidation && !window.validation()) {
    return Fail("--view validation: no validation set (give --validation SET.csv)");
  }
  const Status shot = window.ExportPng(parser.value(shot_opt), *view, size);
  if (!shot.ok()) return Fail(QString::fromStdString(shot.message()));
  return 0;
}

}  // namespace moesim::gui
