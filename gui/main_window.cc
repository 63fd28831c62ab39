#include "gui/main_window.h"

#include <QApplication>
#include <QChartView>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenuBar>
#include <QMessageBox>
#include <QPainter>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <exception>

#include "gui/scenario_form.h"
#include "gui/timeline_widget.h"
#include "proto/scenario_loader.h"
#include "proto/topology_name.h"
#include "sim/planner/budget.h"
#include "sim/planner/validation_set.h"

namespace moesim::gui {
namespace {

const char* kViewNames[kNumViews] = {"experts",  "breakdown",  "tradeoff",
                                     "timeline", "validation", "budget"};
const char* kViewTitles[kNumViews] = {"Experts",  "Breakdown",  "Trade-off",
                                      "Timeline", "Validation", "Budget"};
const char* kStrategies[] = {"APPLE_3D", "NAIVE_2D", "PADDED_2D",    "MEGATRON",
                             "FSDP",     "ZERO1",    "DATA_PARALLEL"};
const char* kClusters[] = {"tpu-v5e:16x16", "tpu-v5e:8x8",   "tpu-v4:8x8x4",
                           "tpu-v5p:4x4x8", "tpu-v6e:16x16", "dgx-a100:16",
                           "dgx-h100:32",   "dgx-b200:8",    "gb200-nvl72:2"};

QString Seconds(double s) { return QString::number(s, 'f', 4) + " s"; }

QString Gib(double bytes) { return QString::number(bytes / (1024.0 * 1024 * 1024), 'f', 2); }

std::vector<std::string> SplitList(const QString& text) {
  std::vector<std::string> out;
  for (const QString& s : text.split(',', Qt::SkipEmptyParts))
    out.push_back(s.trimmed().toStdString());
  return out;
}

}  // namespace

const char* ViewName(View v) { return kViewNames[static_cast<int>(v)]; }

std::optional<View> ParseView(const QString& name) {
  for (int i = 0; i < kNumViews; ++i) {
    if (name == kViewNames[i]) return static_cast<View>(i);
  }
  return std::nullopt;
}

MainWindow::MainWindow(const QString& source_dir, QWidget* parent)
    : QMainWindow(parent), source_dir_(source_dir) {
  setWindowTitle("moesim-gui");
  jobs_ = std::max(1, QThread::idealThreadCount());
  // Enough threads for one job of each kind; each job runs its own RunPoints threads.
  pool_.setMaxThreadCount(kNumJobKinds + 2);
  const QString default_set = source_dir_ + "/validation/apple2024.csv";
  if (QFileInfo::exists(default_set)) validation_path_ = default_set;
  BuildPanel();
  BuildViews();
  BuildMenu();
  resize(1500, 950);
  Reload();
}

MainWindow::~MainWindow() {
  for (auto& job : running_) {
    if (job) job->cancel->store(true);
  }
  pool_.waitForDone();
}

void MainWindow::BuildPanel() {
  auto* panel = new QWidget;
  auto* v = new QVBoxLayout(panel);
  auto* row = new QHBoxLayout;
  picker_ = new QComboBox;
  picker_->setObjectName("scenario_picker");
  PopulatePicker();
  connect(picker_, &QComboBox::activated, this,
          [this](int i) { OpenScenario(picker_->itemData(i).toString()); });
  auto* open = new QPushButton("Open...");
  connect(open, &QPushButton::clicked, this, [this]() {
    const QString path =
        QFileDialog::getOpenFileName(this, "Open scenario", source_dir_ + "/scenarios",
                                     "Scenarios (*.textproto *.txtpb *.pbtxt);;All files (*)");
    if (!path.isEmpty()) OpenScenario(path);
  });
  row->addWidget(picker_, 1);
  row->addWidget(open);
  v->addLayout(row);

  auto* presets = new QHBoxLayout;
  strategy_preset_ = new QComboBox;
  strategy_preset_->setObjectName("strategy_preset");
  strategy_preset_->addItem("Strategy preset...");
  for (const char* s : kStrategies) strategy_preset_->addItem(s, QString(s));
  strategy_preset_->setToolTip(
      "Sets sharding.strategy and the fastest mesh for it on this cluster (a search)");
  cluster_preset_ = new QComboBox;
  cluster_preset_->setObjectName("cluster_preset");
  cluster_preset_->addItem("Cluster preset...");
  for (const char* c : kClusters) cluster_preset_->addItem(c, QString(c));
  cluster_preset_->setToolTip("Sets cluster.topology, its chip, and the fastest mesh for it");
  presets->addWidget(strategy_preset_);
  presets->addWidget(cluster_preset_);
  v->addLayout(presets);

  auto fastest_mesh = [this](const std::string& strategy) {
    if (!scenario_) return;
    const Scenario sc = *scenario_;
    const ScenarioText base = doc_.base();
    const auto overrides = doc_.overrides();
    const int jobs = jobs_;
    Launch(JobKind::kCurrent, "searching meshes for " + QString::fromStdString(strategy),
           [=, this](const std::atomic<bool>& cancel, const auto& progress) {
             std::vector<std::vector<std::string>> points;
             for (const auto& m :
                  MeshFactorizations(sc.cluster.num_devices, sc.model.moe.num_experts,
                                     sc.model.num_layers, sc.sharding.mesh[MeshAxis::kPipeline])) {
               if (m[3] != sc.sharding.mesh[MeshAxis::kPipeline]) continue;
               auto p = overrides;
               for (auto& o : MeshOverrides(strategy, m)) p.push_back(std::move(o));
               points.push_back(std::move(p));
             }
             RunOptions opts;
             opts.jobs = jobs;
             opts.simulate_unfit = false;
             opts.cancel = &cancel;
             opts.progress = progress;
             auto results =
                 std::make_shared<std::vector<PointResult>>(RunPoints(base, points, opts));
             return std::function<void()>([this, results, strategy]() {
               const PointResult* best = FastestFeasible(*results);
               if (best == nullptr) {
                 doc_.SetOverride("sharding.strategy", strategy);
                 status_->setText(QString::fromStdString(strategy) +
                                  ": no mesh fits in memory on this cluster");
               } else {
                 doc_.SetOverrides(best->overrides);
                 status_->setText("preset: " +
                                  QString::fromStdString(DescribeSharding(best->overrides)));
               }
               Reload();
             });
           });
  };
  connect(strategy_preset_, &QComboBox::activated, this, [this, fastest_mesh](int i) {
    if (i <= 0) return;
    fastest_mesh(strategy_preset_->itemData(i).toString().toStdString());
    strategy_preset_->setCurrentIndex(0);
  });
  connect(cluster_preset_, &QComboBox::activated, this, [this, fastest_mesh](int i) {
    if (i <= 0) return;
    const std::string name = cluster_preset_->itemData(i).toString().toStdString();
    cluster_preset_->setCurrentIndex(0);
    auto parsed = ParseTopologyName(name);
    if (!parsed.ok()) return;
    doc_.SetOverride("cluster.topology", name);
    doc_.SetOverride("cluster.num_devices", "0");
    doc_.SetOverride("hardware.chip", "");
    // A mesh every strategy accepts, as the starting point of the search.
    doc_.SetOverride("sharding.mesh.data", std::to_string(parsed->num_devices()));
    doc_.SetOverride("sharding.mesh.expert", "1");
    doc_.SetOverride("sharding.mesh.model", "1");
    doc_.SetOverride("sharding.mesh.pipeline", "1");
    doc_.SetOverride("training.micro_batch_size", "0");
    Reload();
    if (scenario_) fastest_mesh(ShardingStrategyName(scenario_->sharding.strategy));
  });

  auto* reset = new QPushButton("Reset edits");
  connect(reset, &QPushButton::clicked, this, [this]() {
    doc_.ClearOverrides();
    Reload();
  });
  v->addWidget(reset);

  summary_ = new QLabel;
  summary_->setObjectName("summary");
  summary_->setWordWrap(true);
  summary_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  v->addWidget(summary_);
  errors_ = new QLabel;
  errors_->setObjectName("errors");
  errors_->setWordWrap(true);
  errors_->setStyleSheet("color: #b00020; font-weight: bold;");
  errors_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  errors_->hide();
  v->addWidget(errors_);

  form_ = new ScenarioForm;
  auto* scroll = new QScrollArea;
  scroll->setWidget(form_);
  scroll->setWidgetResizable(true);
  v->addWidget(scroll, 1);
  connect(form_, &ScenarioForm::FieldEdited, this,
          [this](const QString& path, const QString& value) {
            doc_.SetOverride(path.toStdString(), value.toStdString());
            Reload();
          });
  connect(form_, &ScenarioForm::RepeatedEdited, this,
          [this](const QString& path, const QString& text) {
            const Status st = doc_.SetRepeatedField(path.toStdString(), text.toStdString());
            if (!st.ok()) {
              form_->ShowErrors(QString::fromStdString(st.message()));
              if (QLabel* l = form_->ErrorLabel(path)) {
                l->setText(QString::fromStdString(st.message()));
                l->show();
              }
              return;
            }
            Reload();
          });

  auto* dock = new QDockWidget("Scenario", this);
  dock->setObjectName("scenario_dock");
  dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
  dock->setWidget(panel);
  dock->setMinimumWidth(430);
  addDockWidget(Qt::LeftDockWidgetArea, dock);
}

void MainWindow::PopulatePicker() {
  picker_->clear();
  picker_->addItem("<default> (built in: apple2024/moe-1.6b-64e)", QString());
  QDir dir(source_dir_ + "/scenarios");
  for (const QString& group : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
    QDir sub(dir.filePath(group));
    for (const QString& f : sub.entryList({"*.textproto"}, QDir::Files, QDir::Name)) {
      picker_->addItem(group + "/" + f, sub.filePath(f));
    }
  }
}

void MainWindow::BuildViews() {
  tabs_ = new QTabWidget;
  tabs_->setObjectName("views");
  for (int i = 0; i < kNumViews; ++i) {
    auto* page = new QWidget;
    auto* v = new QVBoxLayout(page);
    const View view = static_cast<View>(i);
    if (view == View::kTradeoff) {
      auto* row = new QHBoxLayout;
      tradeoff_x_ = new QComboBox;
      tradeoff_x_->addItem("x: total parameters");
      tradeoff_x_->addItem("x: memory per device");
      connect(tradeoff_x_, &QComboBox::activated, this, [this](int) { ShowSweep(); });
      row->addWidget(tradeoff_x_);
      row->addWidget(new QLabel("Click a point to load that configuration."), 1);
      v->addLayout(row);
    }
    if (view == View::kValidation) {
      auto* row = new QHBoxLayout;
      validation_label_ =
          new QLabel(validation_path_.isEmpty() ? "no validation set" : validation_path_);
      auto* open = new QPushButton("Open validation set...");
      connect(open, &QPushButton::clicked, this, [this]() {
        const QString path = QFileDialog::getOpenFileName(
            this, "Open validation set", source_dir_ + "/validation", "CSV (*.csv)");
        if (!path.isEmpty()) OpenValidationSet(path);
      });
      row->addWidget(validation_label_, 1);
      row->addWidget(open);
      v->addLayout(row);
    }
    if (view == View::kBudget) {
      auto* row = new QHBoxLayout;
      budget_experts_ = new QLineEdit("16,64,256");
      budget_strategies_ = new QLineEdit("APPLE_3D");
      budget_pipeline_ = new QSpinBox;
      budget_pipeline_->setRange(1, 64);
      budget_pipeline_->setValue(1);
      auto* run = new QPushButton("Plan");
      connect(run, &QPushButton::clicked, this, [this]() {
        have_[static_cast<int>(JobKind::kBudget)] = -1;
        RefreshVisible();
      });
      row->addWidget(new QLabel("experts"));
      row->addWidget(budget_experts_);
      row->addWidget(new QLabel("strategies"));
      row->addWidget(budget_strategies_);
      row->addWidget(new QLabel("max pipeline"));
      row->addWidget(budget_pipeline_);
      row->addWidget(run);
      v->addLayout(row);
    }
    if (view == View::kTimeline) {
      v->addWidget(new QLabel(
          "One step of the scenario as configured. Wheel: zoom; drag: pan; double-click: whole "
          "step; hover: the op."));
      timeline_ = new TimelineWidget;
      v->addWidget(timeline_, 1);
    } else {
      charts_[i] = new QChartView;
      charts_[i]->setObjectName(QString(kViewNames[i]) + "_chart");
      charts_[i]->setRenderHint(QPainter::Antialiasing);
      charts_[i]->setChart(new QChart);
      v->addWidget(charts_[i], 3);
    }
    if (view == View::kBudget) {
      budget_table_ = new QTableWidget;
      budget_table_->setColumnCount(7);
      budget_table_->setHorizontalHeaderLabels(
          {"experts", "every", "best sharding", "step (s)", "total", "active", "tokens"});
      budget_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
      budget_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
      v->addWidget(budget_table_, 1);
    }
    tabs_->addTab(page, kViewTitles[i]);
  }
  connect(tabs_, &QTabWidget::currentChanged, this, [this](int) { RefreshVisible(); });
  setCentralWidget(tabs_);

  progress_ = new QProgressBar;
  progress_->setObjectName("progress");
  progress_->setMaximumWidth(260);
  progress_->hide();
  cancel_ = new QPushButton("Cancel");
  cancel_->setObjectName("cancel");
  cancel_->hide();
  connect(cancel_, &QPushButton::clicked, this, &MainWindow::CancelJobs);
  status_ = new QLabel;
  statusBar()->addWidget(status_, 1);
  statusBar()->addPermanentWidget(progress_);
  statusBar()->addPermanentWidget(cancel_);
}

void MainWindow::BuildMenu() {
  QMenu* file = menuBar()->addMenu("&File");
  file->addAction("&Open scenario...", QKeySequence::Open, this, [this]() {
    const QString path =
        QFileDialog::getOpenFileName(this, "Open scenario", source_dir_ + "/scenarios");
    if (!path.isEmpty()) OpenScenario(path);
  });
  file->addAction("Open &validation set...", this, [this]() {
    const QString path = QFileDialog::getOpenFileName(this, "Open validation set",
                                                      source_dir_ + "/validation", "CSV (*.csv)");
    if (!path.isEmpty()) OpenValidationSet(path);
  });
  file->addSeparator();
  auto export_as = [this](const QString& what, const QString& filter, auto fn) {
    const View v = CurrentView();
    const QString path =
        QFileDialog::getSaveFileName(this, "Export " + what, QString(ViewName(v)) + "." + filter,
                                     filter.toUpper() + " (*." + filter + ")");
    if (path.isEmpty()) return;
    const Status st = fn(path, v);
    if (!st.ok()) QMessageBox::warning(this, "Export", QString::fromStdString(st.message()));
  };
  file->addAction("Export chart as &PNG...", this, [this, export_as]() {
    export_as("PNG", "png", [this](const QString& p, View v) { return ExportPng(p, v); });
  });
  file->addAction("Export chart as &SVG...", this, [this, export_as]() {
    export_as("SVG", "svg", [this](const QString& p, View v) { return ExportSvg(p, v); });
  });
  file->addAction("Export data as &CSV...", this, [this, export_as]() {
    export_as("CSV", "csv", [this](const QString& p, View v) { return ExportCsv(p, v); });
  });
  file->addSeparator();
  file->addAction("&Quit", QKeySequence::Quit, this, &QWidget::close);
}

Status MainWindow::OpenScenario(const QString& path, const std::vector<std::string>& overrides) {
  const Status st = doc_.Open(path.toStdString());
  if (!st.ok()) {
    errors_->setText(QString::fromStdString(st.message()));
    errors_->show();
    return st;
  }
  doc_.SetOverrides(overrides);
  const int index = picker_->findData(path);
  if (index >= 0) picker_->setCurrentIndex(index);
  Reload();
  return scenario_ ? Status::Ok() : doc_.Load().status();
}

void MainWindow::EditField(const QString& path, const QString& value) {
  doc_.SetOverride(path.toStdString(), value.toStdString());
  Reload();
}

Status MainWindow::OpenValidationSet(const QString& path) {
  if (!QFileInfo::exists(path)) {
    return Status::InvalidInput(path.toStdString() + ": cannot open validation set");
  }
  validation_path_ = path;
  validation_label_->setText(path);
  have_[static_cast<int>(JobKind::kValidation)] = -1;
  RefreshVisible();
  return Status::Ok();
}

void MainWindow::ShowView(View v) {
  tabs_->setCurrentIndex(static_cast<int>(v));
  RefreshVisible();
}

View MainWindow::CurrentView() const { return static_cast<View>(tabs_->currentIndex()); }

QString MainWindow::ScenarioName() const {
  if (!scenario_) return QString();
  return QString::fromStdString(scenario_->name.empty() ? scenario_->source : scenario_->name) +
         (doc_.overrides().empty() ? "" : " (edited)");
}

void MainWindow::Reload() {
  ++generation_;
  auto sc = doc_.Load();
  form_->SetValues(doc_.base().text, doc_.overrides());
  if (!sc.ok()) {
    scenario_.reset();
    const QString message = QString::fromStdString(sc.status().message());
    form_->ShowErrors(message);
    errors_->setText(message);
    errors_->show();
    summary_->setText("The views show the last valid scenario.");
    status_->setText("invalid scenario");
    emit ScenarioChanged(false);
    return;
  }
  form_->ClearErrors();
  errors_->hide();
  scenario_ = std::move(*sc);
  summary_->setText("simulating...");
  emit ScenarioChanged(true);
  RefreshVisible();
}

void MainWindow::RefreshVisible() {
  if (!scenario_) return;
  auto needs = [this](JobKind k) {
    const int i = static_cast<int>(k);
    const bool running_now = running_[i] && running_[i]->generation == generation_;
    return have_[i] != generation_ && !running_now;
  };
  const Scenario sc = *scenario_;
  const ScenarioText base = doc_.base();
  const std::vector<std::string> overrides = doc_.overrides();
  const int jobs = jobs_;
  const int gen = generation_;
  if (needs(JobKind::kCurrent)) {
    Launch(JobKind::kCurrent, "simulating the scenario",
           [=, this](const std::atomic<bool>&, const auto&) {
             SimulateOptions opts;
             opts.keep_program = true;
             auto r = SimulateScenario(sc, opts);
             if (!r.ok()) {
               const QString m = QString::fromStdString(r.status().message());
               return std::function<void()>([this, m]() { ShowJobError(JobKind::kCurrent, m); });
             }
             auto report = std::make_shared<const SimReport>(std::move(*r));
             Timeline built = BuildTimeline(*report, sc.sharding.mesh);
             built.ops = StepOps(sc, *report);
             auto timeline = std::make_shared<const Timeline>(std::move(built));
             return std::function<void()>([this, report, timeline, gen]() {
               if (gen != generation_) return;
               current_ = report;
               timeline_data_ = timeline;
               have_[static_cast<int>(JobKind::kCurrent)] = gen;
               ShowCurrent();
             });
           });
  }
  const View v = CurrentView();
  if ((v == View::kExperts || v == View::kBreakdown || v == View::kTradeoff) &&
      needs(JobKind::kSweep)) {
    StartSweep(sweep_spec_);
  }
  if (v == View::kValidation && have_[static_cast<int>(JobKind::kValidation)] < 0 &&
      !running_[static_cast<int>(JobKind::kValidation)] && !validation_path_.isEmpty()) {
    const std::string path = validation_path_.toStdString();
    Launch(JobKind::kValidation, "validation set",
           [=, this](const std::atomic<bool>& cancel, const auto& progress) {
             auto r = EvaluateValidationSet(path, NetworkLevel::kAnalytical, progress, &cancel);
             if (!r.ok()) {
               const QString m = QString::fromStdString(r.status().message());
               return std::function<void()>([this, m]() { ShowJobError(JobKind::kValidation, m); });
             }
             auto report = std::make_shared<const ValidationReport>(std::move(*r));
             return std::function<void()>([this, report]() {
               validation_ = report;
               have_[static_cast<int>(JobKind::kValidation)] = generation_;
               ShowValidation();
             });
           });
  }
  if (v == View::kBudget && needs(JobKind::kBudget)) {
    SearchSpace space;
    space.strategies = SplitList(budget_strategies_->text());
    space.experts.clear();
    for (const std::string& e : SplitList(budget_experts_->text())) {
      bool ok = false;
      const qlonglong n = QString::fromStdString(e).toLongLong(&ok);
      if (ok && n > 0) space.experts.push_back(n);
    }
    space.max_pipeline = budget_pipeline_->value();
    Launch(JobKind::kBudget, "budget planner",
           [=, this](const std::atomic<bool>& cancel, const auto& progress) {
             // The planner takes a dense model; an MoE scenario is planned from its dense version.
             auto dense_overrides = overrides;
             Scenario dense = sc;
             if (sc.model.is_moe()) {
               dense_overrides.push_back("model.moe.num_experts=0");
               auto d = LoadScenarioFromText(base.text, base.source_name, dense_overrides,
                                             base.base_dir);
               if (!d.ok()) {
                 const QString m = QString::fromStdString(d.status().message());
                 return std::function<void()>([this, m]() { ShowJobError(JobKind::kBudget, m); });
               }
               dense = *d;
             }
             RunOptions opts;
             opts.jobs = jobs;
             opts.simulate_unfit = false;
             opts.cancel = &cancel;
             opts.progress = progress;
             auto plan = PlanTokensInBudget(base, dense_overrides, dense, space, opts);
             if (!plan.ok()) {
               const QString m = QString::fromStdString(plan.status().message());
               return std::function<void()>([this, m]() { ShowJobError(JobKind::kBudget, m); });
             }
             auto result = std::make_shared<const BudgetPlan>(std::move(*plan));
             return std::function<void()>([this, result, gen]() {
               if (gen != generation_) return;
               budget_ = result;
               have_[static_cast<int>(JobKind::kBudget)] = gen;
               ShowBudget();
             });
           });
  }
}

void MainWindow::StartSweep(const ExpertsSweepSpec& spec) {
  if (!scenario_) return;
  const Scenario sc = *scenario_;
  const ScenarioText base = doc_.base();
  const std::vector<std::string> overrides = doc_.overrides();
  const int jobs = jobs_;
  const int gen = generation_;
  Launch(JobKind::kSweep, "sweeping experts x strategies x meshes",
         [=, this](const std::atomic<bool>& cancel, const auto& progress) {
           RunOptions opts;
           opts.jobs = jobs;
           opts.simulate_unfit = true;
           opts.cancel = &cancel;
           opts.progress = progress;
           auto s = std::make_shared<const ExpertsSweep>(
               RunExpertsSweep(base, overrides, sc, spec, opts));
           return std::function<void()>([this, s, gen]() {
             if (gen != generation_) return;
             sweep_ = s;
             have_[static_cast<int>(JobKind::kSweep)] = gen;
             ShowSweep();
           });
         });
}

void MainWindow::Launch(JobKind kind, const QString& label,
                        std::function<std::function<void()>(
                            const std::atomic<bool>&, const std::function<void(size_t, size_t)>&)>
                            work) {
  const int k = static_cast<int>(kind);
  if (running_[k]) running_[k]->cancel->store(true);  // superseded: its result is dropped
  Job job;
  job.id = next_job_id_++;
  job.generation = generation_;
  job.label = label;
  job.cancel = std::make_shared<std::atomic<bool>>(false);
  running_[k] = job;
  UpdateProgress();
  const int id = job.id;
  auto cancel = job.cancel;
  pool_.start([this, k, id, cancel, work]() {
    auto progress = [this, k, id](size_t done, size_t total) {
      QMetaObject::invokeMethod(
          this,
          [this, k, id, done, total]() {
            if (!running_[k] || running_[k]->id != id) return;
            running_[k]->done = done;
            running_[k]->total = total;
            UpdateProgress();
          },
          Qt::QueuedConnection);
    };
    std::function<void()> apply;
    try {
      apply = work(*cancel, progress);
    } catch (const std::exception& e) {
      const QString m = QString("internal error: ") + e.what();
      apply = [this, k, m]() { ShowJobError(static_cast<JobKind>(k), m); };
    }
    QMetaObject::invokeMethod(
        this,
        [this, k, id, cancel, apply]() {
          if (!running_[k] || running_[k]->id != id) return;
          running_[k].reset();
          apply();
          UpdateProgress();
          emit JobFinished(k, cancel->load());
        },
        Qt::QueuedConnection);
  });
}

void MainWindow::CancelJobs() {
  for (auto& job : running_) {
    if (job) job->cancel->store(true);
  }
  status_->setText("cancelling...");
}

bool MainWindow::JobRunning(JobKind k) const { return running_[static_cast<int>(k)].has_value(); }

void MainWindow::UpdateProgress() {
  const Job* shown = nullptr;
  for (const auto& job : running_) {
    if (job && (shown == nullptr || job->id > shown->id)) shown = &*job;
  }
  if (shown == nullptr) {
    progress_->hide();
    cancel_->hide();
    return;
  }
  progress_->show();
  cancel_->show();
  progress_->setRange(0, shown->total > 0 ? static_cast<int>(shown->total) : 0);
  progress_->setValue(static_cast<int>(shown->done));
  status_->setText(shown->label + (shown->total > 0
                                       ? QString(" (%1/%2)").arg(shown->done).arg(shown->total)
                                       : QString()));
}

void MainWindow::ShowJobError(JobKind k, const QString& message) {
  job_error_[static_cast<int>(k)] = message;
  status_->setText(message.section('\n', 0, 0));
  auto show_in = [&](View v) {
    QChart* c = new QChart;
    c->setTitle("<span style='color:#b00020'>" + message.toHtmlEscaped().replace("\n", "<br>") +
                "</span>");
    charts_[static_cast<int>(v)]->setChart(c);
  };
  if (k == JobKind::kValidation) show_in(View::kValidation);
  if (k == JobKind::kBudget) show_in(View::kBudget);
  if (k == JobKind::kCurrent) {
    summary_->setText(message);
  }
}

void MainWindow::ShowCurrent() {
  job_error_[static_cast<int>(JobKind::kCurrent)].clear();
  const SimReport& r = *current_;
  summary_->setText(
      QString("<b>step time %1</b> &nbsp; MFU %2% &nbsp; %3 tokens/s<br>"
              "params %4 total, %5 activated<br>memory %6 of %7 GiB per device: %8")
          .arg(Seconds(r.step_time_s))
          .arg(100 * r.mfu, 0, 'f', 1)
          .arg(r.tokens_per_s, 0, 'g', 4)
          .arg(r.cost.params.total, 0, 'g', 4)
          .arg(r.cost.params.activated, 0, 'g', 4)
          .arg(Gib(r.memory.peak_bytes))
          .arg(Gib(static_cast<double>(r.memory.capacity_bytes)))
          .arg(r.memory.fits ? "fits" : "<span style='color:#b00020'>DOES NOT FIT</span>"));
  timeline_->SetTimeline(
      *timeline_data_,
      QString("One step of %1: %2 (%3 stage%4%5)")
          .arg(ScenarioName(), Seconds(r.step_time_s))
          .arg(timeline_data_->num_programs)
          .arg(timeline_data_->num_programs == 1 ? "" : "s")
          .arg(timeline_data_->num_programs > 4 ? ", representative ones shown" : ""));
  charts_[static_cast<int>(View::kBreakdown)]->setChart(
      MakeBreakdownChart(sweep_.get(), current_.get(), ScenarioName()));
  status_->setText("ready");
}

void MainWindow::ShowSweep() {
  if (!sweep_) return;
  const QString name = ScenarioName();
  charts_[static_cast<int>(View::kExperts)]->setChart(MakeExpertsChart(*sweep_, name));
  charts_[static_cast<int>(View::kBreakdown)]->setChart(
      MakeBreakdownChart(sweep_.get(), current_.get(), name));
  tradeoff_series_.clear();
  QChart* t = MakeTradeoffChart(*sweep_, tradeoff_x_->currentIndex() == 1, name, &tradeoff_series_);
  for (const auto& ts : tradeoff_series_) {
    const std::vector<size_t> points = ts.points;
    QScatterSeries* series = ts.series;
    connect(series, &QScatterSeries::clicked, this, [this, series, points](const QPointF& at) {
      // The nearest point of the clicked series, in screen distance (axes differ in scale).
      QChart* chart = series->chart();
      const QPointF target = chart->mapToPosition(at, series);
      size_t best = 0;
      double best_d = -1;
      const auto pts = series->points();
      for (qsizetype i = 0; i < pts.size(); ++i) {
        const QPointF d = chart->mapToPosition(pts[i], series) - target;
        const double dd = d.x() * d.x() + d.y() * d.y();
        if (best_d < 0 || dd < best_d) {
          best_d = dd;
          best = static_cast<size_t>(i);
        }
      }
      if (best_d >= 0) LoadTradeoffPoint(points[best]);
    });
  }
  charts_[static_cast<int>(View::kTradeoff)]->setChart(t);
}

void MainWindow::LoadTradeoffPoint(size_t index) {
  if (!sweep_ || index >= sweep_->points.size()) return;
  doc_.SetOverrides(sweep_->points[index].overrides);
  status_->setText("loaded " +
                   QString::fromStdString(DescribeSharding(sweep_->points[index].overrides)));
  Reload();
}

void MainWindow::ShowValidation() {
  job_error_[static_cast<int>(JobKind::kValidation)].clear();
  charts_[static_cast<int>(View::kValidation)]->setChart(
      MakeValidationChart(*validation_, QFileInfo(validation_path_).fileName()));
}

void MainWindow::ShowBudget() {
  job_error_[static_cast<int>(JobKind::kBudget)].clear();
  const BudgetPlan& plan = *budget_;
  charts_[static_cast<int>(View::kBudget)]->setChart(MakeBudgetChart(
      plan,
      ScenarioName() + (scenario_ && scenario_->model.is_moe() ? ", its dense version" : "")));
  budget_table_->setRowCount(static_cast<int>(plan.candidates.size()));
  int row = 0;
  for (const auto& c : plan.candidates) {
    auto set = [&](int col, const QString& text) {
      budget_table_->setItem(row, col, new QTableWidgetItem(text));
    };
    set(0, QString::number(c.experts));
    set(1, QString::number(c.every_k));
    if (c.best) {
      const SimReport& r = c.best->report;
      set(2, QString::fromStdString(DescribeSharding(c.best->overrides)));
      set(3, QString::number(r.step_time_s, 'f', 4));
      set(4, QString::number(r.cost.params.total, 'g', 4));
      set(5, QString::number(r.cost.params.activated, 'g', 4));
      set(6, QString::number(c.tokens, 'g', 4));
    } else {
      set(2, QString("no feasible sharding (%1 unfit, %2 invalid)")
                 .arg(c.counts.unfit)
                 .arg(c.counts.invalid));
    }
    ++row;
  }
}

QChartView* MainWindow::chart_view(View v) const { return charts_[static_cast<int>(v)]; }

QWidget* MainWindow::view_widget(View v) const {
  if (v == View::kTimeline) return timeline_;
  return charts_[static_cast<int>(v)];
}

QString MainWindow::error_text() const { return errors_->isHidden() ? QString() : errors_->text(); }

}  // namespace moesim::gui
