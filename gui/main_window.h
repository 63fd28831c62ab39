// main_window.h
//
// moesim-gui's window: the scenario panel (file picker, presets, the generated form, the CLI's
// messages) and a tab per view. Every simulation runs in a worker thread (its own pool, so the
// window never waits on one); a newer request of the same kind cancels the older, and results
// of a scenario that has since changed are dropped. Views not on screen are refreshed when
// shown (each is always up to date when looked at; one visible view's work at a time).
#pragma once

#include <QMainWindow>
#include <QThreadPool>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "gui/charts.h"
#include "gui/scenario_doc.h"
#include "gui/view_data.h"

class QChartView;
class QComboBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTabWidget;
class QTableWidget;

namespace moesim::gui {

class ScenarioForm;
class TimelineWidget;

enum class View { kExperts = 0, kBreakdown, kTradeoff, kTimeline, kValidation, kBudget };
inline constexpr int kNumViews = 6;
const char* ViewName(View v);  // "experts", ...
std::optional<View> ParseView(const QString& name);

// The work behind the views (one job of each kind at a time).
enum class JobKind { kCurrent = 0, kSweep, kValidation, kBudget };
inline constexpr int kNumJobKinds = 4;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  // `source_dir`: where scenarios/ and validation/ are looked for.
  explicit MainWindow(const QString& source_dir, QWidget* parent = nullptr);
  ~MainWindow() override;

  // Opens a scenario file ("" = the built-in default) with `overrides` (`--set` values).
  // Returns the loader's status; the window shows it either way.
  Status OpenScenario(const QString& path, const std::vector<std::string>& overrides = {});
  // As typing `value` into the field `path` of the form.
  void EditField(const QString& path, const QString& value);
  Status OpenValidationSet(const QString& path);
  void ShowView(View v);
  View CurrentView() const;

  // Starts the sweep behind Experts / Breakdown / Trade-off with `spec` (the default spec
  // otherwise). `jobs` worker threads.
  void StartSweep(const ExpertsSweepSpec& spec);
  void CancelJobs();
  bool JobRunning(JobKind k) const;
  void set_jobs(int jobs) { jobs_ = jobs; }

  // Widgets and data, for tests and headless mode.
  ScenarioForm* form() const { return form_; }
  QChartView* chart_view(View v) const;  // null for the timeline
  TimelineWidget* timeline_widget() const { return timeline_; }
  QWidget* view_widget(View v) const;  // what a screenshot shows
  QString error_text() const;
  const ScenarioDoc& doc() const { return doc_; }
  std::shared_ptr<const SimReport> current_report() const { return current_; }
  std::shared_ptr<const ExpertsSweep> sweep() const { return sweep_; }
  std::shared_ptr<const ValidationReport> validation() const { return validation_; }
  std::shared_ptr<const BudgetPlan> budget() const { return budget_; }
  QString last_job_error(JobKind k) const { return job_error_[static_cast<int>(k)]; }

  // `size`: the picture's size (the view's own when invalid).
  Status ExportPng(const QString& path, View v, QSize size = QSize());
  Status ExportSvg(const QString& path, View v) const;
  Status ExportCsv(const QString& path, View v) const;

 signals:
  // A job's result (or its error, or its cancellation) has been applied to the views.
  void JobFinished(int kind, bool cancelled);
  void ScenarioChanged(bool valid);

 private:
  void BuildPanel();
  void BuildViews();
  void BuildMenu();
  void Reload();          // after any change of doc_
  void RefreshVisible();  // starts what the current tab needs and lacks
  void Launch(JobKind kind, const QString& label,
              std::function<std::function<void()>(const std::atomic<bool>& cancel,
                                                  const std::function<void(size_t, size_t)>&)>
                  work);
  void UpdateProgress();
  void ShowCurrent();
  void ShowSweep();
  void ShowValidation();
  void ShowBudget();
  void ShowJobError(JobKind k, const QString& message);
  void LoadTradeoffPoint(size_t index);
  QString ScenarioName() const;
  void PopulatePicker();

  QString source_dir_;
  ScenarioDoc doc_;
  std::optional<Scenario> scenario_;  // doc_ loaded; empty when invalid
  int generation_ = 0;                // bumped on every change of doc_
  int jobs_ = 1;
  QString validation_path_;
  ExpertsSweepSpec sweep_spec_;

  std::shared_ptr<const SimReport> current_;
  std::shared_ptr<const ExpertsSweep> sweep_;
  std::shared_ptr<const ValidationReport> validation_;
  std::shared_ptr<const BudgetPlan> budget_;
  std::shared_ptr<const Timeline> timeline_data_;
  int have_[kNumJobKinds] = {-1, -1, -1, -1};  // generation each result belongs to
  QString job_error_[kNumJobKinds];

  struct Job {
    int id = 0;
    int generation = 0;
    QString label;
    std::shared_ptr<std::atomic<bool>> cancel;
    size_t done = 0, total = 0;
  };
  std::optional<Job> running_[kNumJobKinds];
  int next_job_id_ = 1;
  QThreadPool pool_;

  // Panel.
  QComboBox* picker_ = nullptr;
  QComboBox* strategy_preset_ = nullptr;
  QComboBox* cluster_preset_ = nullptr;
  QLabel* summary_ = nullptr;
  QLabel* errors_ = nullptr;
  ScenarioForm* form_ = nullptr;
  // Views.
  QTabWidget* tabs_ = nullptr;
  QChartView* charts_[kNumViews] = {};
  TimelineWidget* timeline_ = nullptr;
  QComboBox* tradeoff_x_ = nullptr;
  std::vector<TradeoffSeries> tradeoff_series_;
  QLabel* validation_label_ = nullptr;
  QLineEdit* budget_experts_ = nullptr;
  QLineEdit* budget_strategies_ = nullptr;
  QSpinBox* budget_pipeline_ = nullptr;
  QTableWidget* budget_table_ = nullptr;
  // Status bar.
  QProgressBar* progress_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QLabel* status_ = nullptr;
};

}  // namespace moesim::gui
