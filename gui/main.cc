// moesim-gui: see app.h.
#include "gui/app.h"

int main(int argc, char** argv) { return moesim::gui::RunApp(argc, argv); }
