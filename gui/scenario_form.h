// scenario_form.h
//
// The scenario as a form generated from the protobuf descriptor of moesim.pb.Scenario: a group
// per message, an editor per field chosen by its type (enum -> combo of its values, bool ->
// true/false, number or string -> line edit, repeated -> protobuf text of its elements), so a
// field added to moesim.proto appears without GUI code. Edits come out as `--set PATH=VALUE`
// (FieldEdited) and are never validated here: the caller loads the scenario and hands the
// loader's message back (ShowErrors), which puts each line next to the field it names.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <QLabel>
#include <QString>
#include <QStringList>
#include <QWidget>

namespace google::protobuf {
class Descriptor;
class FieldDescriptor;
class Message;
}  // namespace google::protobuf

class QFormLayout;

namespace moesim::gui {

class ScenarioForm : public QWidget {
  Q_OBJECT

 public:
  explicit ScenarioForm(QWidget* parent = nullptr);

  // Shows the values of `base_text` (a Scenario in protobuf text) with `overrides` on top.
  // Emits nothing.
  void SetValues(const std::string& base_text, const std::vector<std::string>& overrides);

  // Puts each line of `message` under the first field it names; returns the lines naming none.
  QStringList ShowErrors(const QString& message);
  void ClearErrors();

  QWidget* Editor(const QString& path) const;     // null when there is no such field
  QLabel* ErrorLabel(const QString& path) const;  // null when there is no such field
  QStringList FieldPaths() const;

 signals:
  void FieldEdited(const QString& path, const QString& value);
  void RepeatedEdited(const QString& path, const QString& elements_text);

 private:
  struct Field {
    const google::protobuf::FieldDescriptor* descriptor = nullptr;
    QWidget* editor = nullptr;
    QLabel* error = nullptr;
    QString value;  // as last shown or edited, to emit only real changes
  };
  void Build(const google::protobuf::Descriptor* d, const QString& prefix, QFormLayout* layout);
  void AddField(const google::protobuf::FieldDescriptor* f, const QString& path,
                QFormLayout* layout);
  void ShowValue(const QString& path, const QString& value);
  void Edited(const QString& path, const QString& value);
  void ShowMessage(const google::protobuf::Message& m, const QString& prefix);

  std::map<QString, Field> fields_;
  bool updating_ = false;
};

}  // namespace moesim::gui
