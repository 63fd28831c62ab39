// main_window_export.cc: the views as PNG, SVG and CSV files (File menu and headless mode).
#include <QBoxLayout>
#include <QChartView>
#include <QFile>
#include <QFileInfo>
#include <QPainter>
#include <QSvgGenerator>

#include "gui/charts.h"
#include "gui/main_window.h"
#include "gui/timeline_widget.h"

namespace moesim::gui {

Status MainWindow::ExportPng(const QString& path, View v, QSize size) {
  QWidget* w = view_widget(v);
  QImage image;
  auto* layout = qobject_cast<QBoxLayout*>(w->parentWidget()->layout());
  if (size.isValid() && layout != nullptr) {
    // Out of its layout for the picture, so that the layout cannot resize it back meanwhile.
    const int index = layout->indexOf(w);
    const int stretch = layout->stretch(index);
    layout->removeWidget(w);
    QWidget* page = w->parentWidget();
    w->setParent(nullptr);
    w->resize(size);
    image = w->grab().toImage();
    w->setParent(page);
    layout->insertWidget(index, w, stretch);
    w->show();
  } else {
    image = w->grab().toImage();
  }
  if (!image.save(path, "PNG"))
    return Status::InvalidInput(path.toStdString() + ": cannot write PNG");
  return Status::Ok();
}

Status MainWindow::ExportSvg(const QString& path, View v) const {
  QWidget* w = view_widget(v);
  QSvgGenerator gen;
  gen.setFileName(path);
  gen.setSize(w->size());
  gen.setViewBox(QRect(QPoint(0, 0), w->size()));
  gen.setTitle(QString("moesim-gui ") + ViewName(v));
  QPainter p;
  if (!p.begin(&gen)) return Status::InvalidInput(path.toStdString() + ": cannot write SVG");
  if (v == View::kTimeline) {
    timeline_->Render(&p, w->size());
  } else {
    w->render(&p);
  }
  p.end();
  return QFileInfo(path).size() > 0
             ? Status::Ok()
             : Status::InvalidInput(path.toStdString() + ": cannot write SVG");
}

Status MainWindow::ExportCsv(const QString& path, View v) const {
  QString csv;
  switch (v) {
    case View::kExperts:
      if (sweep_) csv = ExpertsCsv(*sweep_);
      break;
    case View::kBreakdown:
      csv = BreakdownCsv(sweep_.get(), current_.get());
      break;
    case View::kTradeoff:
      if (sweep_) csv = TradeoffCsv(*sweep_);
      break;
    case View::kTimeline:
      if (timeline_data_) csv = TimelineCsv(*timeline_data_);
      break;
    case View::kValidation:
      if (validation_) csv = ValidationCsv(*validation_);
      break;
    case View::kBudget:
      if (budget_) csv = BudgetCsv(*budget_);
      break;
  }
  if (csv.isEmpty())
    return Status::InvalidInput(std::string(ViewName(v)) + ": nothing computed yet");
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) {
    return Status::InvalidInput(path.toStdString() + ": cannot open for writing");
  }
  f.write(csv.toUtf8());
  return Status::Ok();
}

}  // namespace moesim::gui
