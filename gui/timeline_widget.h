// timeline_widget.h
//
// One simulated step as a Gantt chart: a lane per (representative stage, stream), ops coloured
// by kind. Mouse wheel zooms around the cursor, dragging pans, hovering shows the op (name,
// FLOPs or bytes, start/end); double-click resets the zoom. Painted directly: a step has
// thousands of ops, more than chart series handle smoothly.
#pragma once

#include <QColor>
#include <QWidget>

#include "gui/view_data.h"

namespace moesim::gui {

QColor OpKindColor(OpKind k);

class TimelineWidget : public QWidget {
  Q_OBJECT

 public:
  explicit TimelineWidget(QWidget* parent = nullptr);

  void SetTimeline(Timeline timeline, const QString& title);
  const Timeline& timeline() const { return timeline_; }
  // The visible time window, seconds.
  double view_start_s() const { return t0_; }
  double view_end_s() const { return t1_; }
  void SetView(double start_s, double end_s);
  // The bar under widget position `pos`, or -1.
  int BarAt(const QPoint& pos) const;
  // Renders the whole widget onto `painter` sized `size` (PNG and SVG export).
  void Render(QPainter* painter, const QSize& size) const;

 protected:
  void paintEvent(QPaintEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void mouseDoubleClickEvent(QMouseEvent* event) override;

 private:
  QRectF PlotRect(const QSize& size) const;
  double XToTime(double x, const QRectF& plot) const;

  Timeline timeline_;
  QString title_;
  double t0_ = 0, t1_ = 1;
  bool dragging_ = false;
  QPoint drag_from_;
  double drag_t0_ = 0, drag_t1_ = 0;
};

}  // namespace moesim::gui
