// app.h
//
// moesim-gui's command line:
//   moesim-gui [SCENARIO] [--set PATH=VALUE ...] [--validation SET.csv] [--view VIEW] [--jobs N]
//   moesim-gui --screenshot OUT.png --view VIEW [--size WxH] [SCENARIO] [--set ...]
// With --screenshot the window is never shown: the view is computed, rendered offscreen
// (QT_QPA_PLATFORM=offscreen unless set) to OUT.png, and the program exits. Exit codes as the
// CLI's: 0 ok, 2 bad input (message on stderr, "moesim-gui: ..."), 1 internal error.
#pragma once

namespace moesim::gui {

int RunApp(int argc, char** argv);

}  // namespace moesim::gui
