#include "gui/scenario_form.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>
#include <QComboBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QVBoxLayout>

#include "proto/moesim.pb.h"

namespace moesim::gui {

namespace gp = google::protobuf;

namespace {

QString ScalarText(const gp::Message& m, const gp::FieldDescriptor* f) {
  const gp::Reflection* r = m.GetReflection();
  switch (f->cpp_type()) {
    case gp::FieldDescriptor::CPPTYPE_INT32:
      return QString::number(r->GetInt32(m, f));
    case gp::FieldDescriptor::CPPTYPE_INT64:
      return QString::number(r->GetInt64(m, f));
    case gp::FieldDescriptor::CPPTYPE_UINT32:
      return QString::number(r->GetUInt32(m, f));
    case gp::FieldDescriptor::CPPTYPE_UINT64:
      return QString::number(r->GetUInt64(m, f));
    case gp::FieldDescriptor::CPPTYPE_DOUBLE:
      return QString::number(r->GetDouble(m, f), 'g', 17);
    case gp::FieldDescriptor::CPPTYPE_FLOAT:
      return QString::number(static_cast<double>(r->GetFloat(m, f)), 'g', 9);
    case gp::FieldDescriptor::CPPTYPE_BOOL:
      // An optional bool left out shows as unset: the loader resolves its default.
      if (f->has_presence() && !r->HasField(m, f)) return QString();
      return r->GetBool(m, f) ? "true" : "false";
    case gp::FieldDescriptor::CPPTYPE_ENUM:
      return QString::fromStdString(r->GetEnum(m, f)->name());
    case gp::FieldDescriptor::CPPTYPE_STRING:
      return QString::fromStdString(r->GetString(m, f));
    case gp::FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return QString();
}

// The elements of repeated field `f` of `m` as protobuf text ("rules { ... }" per element).
QString RepeatedText(const gp::Message& m, const gp::FieldDescriptor* f) {
  std::unique_ptr<gp::Message> only(m.New());
  only->CopyFrom(m);
  const gp::Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i) != f) only->GetReflection()->ClearField(only.get(), d->field(i));
  }
  std::string text;
  gp::TextFormat::PrintToString(*only, &text);
  return QString::fromStdString(text);
}

bool IsIdentChar(QChar c) { return c.isLetterOrNumber() || c == '_' || c == '.'; }

}  // namespace

ScenarioForm::ScenarioForm(QWidget* parent) : QWidget(parent) {
  auto* top = new QVBoxLayout(this);
  top->setContentsMargins(0, 0, 0, 0);
  auto* root = new QFormLayout;
  top->addLayout(root);
  top->addStretch(1);
  Build(pb::Scenario::descriptor(), QString(), root);
}

void ScenarioForm::Build(const gp::Descriptor* d, const QString& prefix, QFormLayout* layout) {
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    const QString path = prefix + QString::fromStdString(f->name());
    if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated()) {
      auto* box = new QGroupBox(path, this);
      auto* inner = new QFormLayout(box);
      inner->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
      Build(f->message_type(), path + ".", inner);
      layout->addRow(box);
    } else {
      AddField(f, path, layout);
    }
  }
}

void ScenarioForm::AddField(const gp::FieldDescriptor* f, const QString& path,
                            QFormLayout* layout) {
  Field field;
  field.descriptor = f;
  if (f->is_repeated()) {
    auto* holder = new QWidget(this);
    auto* v = new QVBoxLayout(holder);
    v->setContentsMargins(0, 0, 0, 0);
    auto* text = new QPlainTextEdit(holder);
    text->setObjectName(path);
    text->setMaximumHeight(90);
    text->setPlaceholderText(QString::fromStdString(f->name()) + " { ... }  (protobuf text)");
    auto* apply = new QPushButton("Apply " + QString::fromStdString(f->name()), holder);
    v->addWidget(text);
    v->addWidget(apply);
    connect(apply, &QPushButton::clicked, this,
            [this, path, text]() { emit RepeatedEdited(path, text->toPlainText()); });
    field.editor = text;
    layout->addRow(QString::fromStdString(f->name()), holder);
  } else if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_ENUM ||
             f->cpp_type() == gp::FieldDescriptor::CPPTYPE_BOOL) {
    auto* combo = new QComboBox(this);
    combo->setObjectName(path);
    if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_ENUM) {
      const gp::EnumDescriptor* e = f->enum_type();
      for (int i = 0; i < e->value_count(); ++i) {
        const QString name = QString::fromStdString(e->value(i)->name());
        combo->addItem(e->value(i)->number() == 0 ? name + " (default)" : name, name);
      }
    } else {
      combo->addItem("false", "false");
      combo->addItem("true", "true");
      combo->setPlaceholderText("(default)");
    }
    connect(combo, &QComboBox::activated, this,
            [this, path, combo](int i) { Edited(path, combo->itemData(i).toString()); });
    field.editor = combo;
    layout->addRow(QString::fromStdString(f->name()), combo);
  } else {
    auto* line = new QLineEdit(this);
    line->setObjectName(path);
    connect(line, &QLineEdit::editingFinished, this,
            [this, path, line]() { Edited(path, line->text().trimmed()); });
    field.editor = line;
    layout->addRow(QString::fromStdString(f->name()), line);
  }
  field.error = new QLabel(this);
  field.error->setObjectName(path + ".error");
  field.error->setWordWrap(true);
  field.error->setStyleSheet("color: #b00020;");
  field.error->setTextInteractionFlags(Qt::TextSelectableByMouse);
  field.error->hide();
  layout->addRow(QString(), field.error);
  fields_[path] = field;
}

void ScenarioForm::Edited(const QString& path, const QString& value) {
  if (updating_) return;
  Field& f = fields_.at(path);
  if (f.value == value) return;
  f.value = value;
  emit FieldEdited(path, value);
}

void ScenarioForm::ShowValue(const QString& path, const QString& value) {
  auto it = fields_.find(path);
  if (it == fields_.end()) return;
  Field& f = it->second;
  f.value = value;
  if (auto* line = qobject_cast<QLineEdit*>(f.editor)) {
    line->setText(value);
  } else if (auto* combo = qobject_cast<QComboBox*>(f.editor)) {
    int index = -1;
    for (int i = 0; i < combo->count(); ++i) {
      if (combo->itemData(i).toString().compare(value, Qt::CaseInsensitive) == 0) index = i;
    }
    if (value == "1") index = combo->findData("true");
    if (value == "0" && f.descriptor->cpp_type() == gp::FieldDescriptor::CPPTYPE_BOOL) {
      index = combo->findData("false");
    }
    combo->setCurrentIndex(index);
  } else if (auto* text = qobject_cast<QPlainTextEdit*>(f.editor)) {
    text->setPlainText(value);
  }
}

void ScenarioForm::ShowMessage(const gp::Message& m, const QString& prefix) {
  const gp::Descriptor* d = m.GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    const QString path = prefix + QString::fromStdString(f->name());
    if (f->is_repeated()) {
      ShowValue(path, RepeatedText(m, f));
    } else if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) {
      ShowMessage(m.GetReflection()->GetMessage(m, f), path + ".");
    } else {
      ShowValue(path, ScalarText(m, f));
    }
  }
}

void ScenarioForm::SetValues(const std::string& base_text,
                             const std::vector<std::string>& overrides) {
  updating_ = true;
  pb::Scenario msg;
  // A text that does not parse leaves the form empty; the loader reports why.
  gp::TextFormat::ParseFromString(base_text, &msg);
  ShowMessage(msg, QString());
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos) continue;
    ShowValue(QString::fromStdString(o.substr(0, eq)), QString::fromStdString(o.substr(eq + 1)));
  }
  updating_ = false;
}

void ScenarioForm::ClearErrors() {
  for (auto& [path, f] : fields_) {
    f.error->clear();
    f.error->hide();
  }
}

QStringList ScenarioForm::ShowErrors(const QString& message) {
  ClearErrors();
  QStringList unmatched;
  for (const QString& line : message.split('\n', Qt::SkipEmptyParts)) {
    const Field* best = nullptr;
    qsizetype best_pos = -1;
    for (const auto& [path, f] : fields_) {
      for (qsizetype pos = line.indexOf(path); pos >= 0; pos = line.indexOf(path, pos + 1)) {
        const qsizetype end = pos + path.size();
        const bool bounded = (pos == 0 || !IsIdentChar(line[pos - 1])) &&
                             (end == line.size() || !IsIdentChar(line[end]));
        if (!bounded) continue;
        if (best_pos < 0 || pos < best_pos) {
          best_pos = pos;
          best = &f;
        }
        break;
      }
    }
    if (best == nullptr) {
      unmatched << line;
      continue;
    }
    const QString prev = best->error->text();
    best->error->setText(prev.isEmpty() ? line : prev + "\n" + line);
    best->error->show();
  }
  return unmatched;
}

QWidget* ScenarioForm::Editor(const QString& path) const {
  auto it = fields_.find(path);
  return it == fields_.end() ? nullptr : it->second.editor;
}

QLabel* ScenarioForm::ErrorLabel(const QString& path) const {
  auto it = fields_.find(path);
  return it == fields_.end() ? nullptr : it->second.error;
}

QStringList ScenarioForm::FieldPaths() const {
  QStringList out;
  for (const auto& [path, f] : fields_) out << path;
  return out;
}

}  // namespace moesim::gui
