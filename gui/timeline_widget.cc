#include "gui/timeline_widget.h"

#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>

namespace moesim::gui {
namespace {

constexpr int kLeftMargin = 170;
constexpr int kTopMargin = 64;
constexpr int kBottomMargin = 40;
constexpr int kRightMargin = 20;

// A tick step of 1, 2 or 5 x 10^n giving about `target` ticks over `span`.
double NiceStep(double span, int target) {
  const double raw = span / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) return m * mag;
  }
  return 10 * mag;
}

}  // namespace

QColor OpKindColor(OpKind k) {
  switch (k) {
    case OpKind::kMatmul:
      return QColor(0x1f, 0x77, 0xb4);
    case OpKind::kElementwise:
      return QColor(0x9e, 0xc9, 0xe8);
    case OpKind::kAllReduce:
      return QColor(0xd6, 0x27, 0x28);
    case OpKind::kAllGather:
      return QColor(0x2c, 0xa0, 0x2c);
    case OpKind::kReduceScatter:
      return QColor(0xff, 0x7f, 0x0e);
    case OpKind::kAllToAll:
      return QColor(0x94, 0x67, 0xbd);
    case OpKind::kSendRecv:
      return QColor(0x8c, 0x56, 0x4b);
  }
  return Qt::gray;
}

TimelineWidget::TimelineWidget(QWidget* parent) : QWidget(parent) {
  setMouseTracking(true);
  setMinimumSize(400, 250);
  setAutoFillBackground(true);
  setPalette(QPalette(Qt::white));
}

void TimelineWidget::SetTimeline(Timeline timeline, const QString& title) {
  timeline_ = std::move(timeline);
  title_ = title;
  t0_ = 0;
  t1_ = timeline_.step_time_s > 0 ? timeline_.step_time_s : 1;
  update();
}

void TimelineWidget::SetView(double start_s, double end_s) {
  if (!(end_s > start_s)) return;
  t0_ = start_s;
  t1_ = end_s;
  update();
}

QRectF TimelineWidget::PlotRect(const QSize& size) const {
  return QRectF(kLeftMargin, kTopMargin, std::max(10, size.width() - kLeftMargin - kRightMargin),
                std::max(10, size.height() - kTopMargin - kBottomMargin));
}

double TimelineWidget::XToTime(double x, const QRectF& plot) const {
  return t0_ + (x - plot.left()) / plot.width() * (t1_ - t0_);
}

int TimelineWidget::BarAt(const QPoint& pos) const {
  const QRectF plot = PlotRect(size());
  if (!plot.contains(pos) || timeline_.lanes.empty()) return -1;
  const double lane_h = plot.height() / static_cast<double>(timeline_.lanes.size());
  const int lane = static_cast<int>((pos.y() - plot.top()) / lane_h);
  const double t = XToTime(pos.x(), plot);
  // Within a pixel: very short ops are still reachable at low zoom.
  const double slack = (t1_ - t0_) / plot.width();
  int found = -1;
  for (size_t i = 0; i < timeline_.bars.size(); ++i) {
    const auto& b = timeline_.bars[i];
    if (b.lane == lane && b.start_s - slack <= t && t <= b.end_s + slack) {
      found = static_cast<int>(i);
      if (b.start_s <= t && t <= b.end_s) break;
    }
  }
  return found;
}

void TimelineWidget::Render(QPainter* p, const QSize& size) const {
  p->fillRect(QRect(QPoint(0, 0), size), Qt::white);
  p->setRenderHint(QPainter::Antialiasing, false);
  QFont title_font = font();
  title_font.setPointSizeF(title_font.pointSizeF() * 1.25);
  title_font.setBold(true);
  p->setFont(title_font);
  p->setPen(Qt::black);
  p->drawText(QRect(0, 4, size.width(), 26), Qt::AlignHCenter | Qt::AlignVCenter, title_);
  p->setFont(font());

  // Legend.
  const QFontMetrics fm(font());
  int x = kLeftMargin;
  for (int k = 0; k < kNumOpKinds; ++k) {
    const auto kind = static_cast<OpKind>(k);
    p->fillRect(QRect(x, 36, 14, 12), OpKindColor(kind));
    const QString name = OpKindName(kind);
    p->setPen(Qt::black);
    p->drawText(QPoint(x + 18, 47), name);
    x += 18 + fm.horizontalAdvance(name) + 16;
  }

  const QRectF plot = PlotRect(size);
  if (timeline_.lanes.empty()) {
    p->drawText(plot, Qt::AlignCenter, "no step simulated yet");
    return;
  }
  const double lane_h = plot.height() / static_cast<double>(timeline_.lanes.size());
  for (size_t l = 0; l < timeline_.lanes.size(); ++l) {
    const QRectF row(plot.left(), plot.top() + lane_h * static_cast<double>(l), plot.width(),
                     lane_h);
    if (l % 2 == 1) p->fillRect(row, QColor(0xf4, 0xf4, 0xf4));
    p->setPen(Qt::black);
    p->drawText(QRectF(4, row.top(), kLeftMargin - 10, lane_h), Qt::AlignRight | Qt::AlignVCenter,
                QString::fromStdString(timeline_.lanes[l].name));
  }
  p->save();
  p->setClipRect(plot);
  const double scale = plot.width() / (t1_ - t0_);
  for (const auto& b : timeline_.bars) {
    if (b.end_s < t0_ || b.start_s > t1_) continue;
    const double x0 = plot.left() + (b.start_s - t0_) * scale;
    const double w = std::max(1.0, (b.end_s - b.start_s) * scale);
    const QRectF r(x0, plot.top() + lane_h * b.lane + lane_h * 0.15, w, lane_h * 0.7);
    p->fillRect(r, OpKindColor(b.kind));
  }
  p->restore();

  // Time axis in ms.
  p->setPen(Qt::black);
  p->drawLine(plot.bottomLeft(), plot.bottomRight());
  const double span_ms = (t1_ - t0_) * 1e3;
  const double step = NiceStep(span_ms, std::max(2, static_cast<int>(plot.width() / 110)));
  for (double ms = std::ceil(t0_ * 1e3 / step) * step; ms <= t1_ * 1e3 + 1e-9; ms += step) {
    const double xx = plot.left() + (ms / 1e3 - t0_) * scale;
    p->drawLine(QPointF(xx, plot.bottom()), QPointF(xx, plot.bottom() + 5));
    p->drawText(QRectF(xx - 50, plot.bottom() + 6, 100, 16), Qt::AlignHCenter,
                QString::number(ms, 'g', 6));
  }
  p->drawText(QRectF(plot.right() - 200, plot.bottom() + 20, 200, 18), Qt::AlignRight, "time (ms)");
}

void TimelineWidget::paintEvent(QPaintEvent*) {
  QPainter p(this);
  Render(&p, size());
}

void TimelineWidget::wheelEvent(QWheelEvent* event) {
  const QRectF plot = PlotRect(size());
  const double at = XToTime(event->position().x(), plot);
  const double factor = event->angleDelta().y() > 0 ? 0.8 : 1.25;
  const double full = timeline_.step_time_s > 0 ? timeline_.step_time_s : 1;
  double a = at - (at - t0_) * factor;
  double b = at + (t1_ - at) * factor;
  if (b - a > full) {
    a = 0;
    b = full;
  }
  if (b - a < 1e-9) return;
  SetView(a, b);
  event->accept();
}

void TimelineWidget::mousePressEvent(QMouseEvent* event) {
  if (event->button() != Qt::LeftButton) return;
  dragging_ = true;
  drag_from_ = event->pos();
  drag_t0_ = t0_;
  drag_t1_ = t1_;
}

void TimelineWidget::mouseMoveEvent(QMouseEvent* event) {
  if (dragging_) {
    const QRectF plot = PlotRect(size());
    const double dt = (event->pos().x() - drag_from_.x()) / plot.width() * (drag_t1_ - drag_t0_);
    SetView(drag_t0_ - dt, drag_t1_ - dt);
    return;
  }
  const int bar = BarAt(event->pos());
  if (bar < 0 || !timeline_.program) {
    QToolTip::hideText();
    return;
  }
  const auto& b = timeline_.bars[static_cast<size_t>(bar)];
  const Op& op = timeline_.program->ops[static_cast<size_t>(b.op)];
  OpTiming t{b.start_s, b.end_s};
  QToolTip::showText(event->globalPosition().toPoint(),
                     QString::fromStdString(DescribeOp(op, t, timeline_.mesh)), this);
}

void TimelineWidget::mouseReleaseEvent(QMouseEvent*) { dragging_ = false; }

void TimelineWidget::mouseDoubleClickEvent(QMouseEvent*) {
  SetView(0, timeline_.step_time_s > 0 ? timeline_.step_time_s : 1);
}

}  // namespace moesim::gui
