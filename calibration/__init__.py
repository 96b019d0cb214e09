"""Calibration: a guided recording of a new person and the model adapted to them.

plan (what is asked, the prompter), features (RGB features computed while recording), adapt (the adapted
bundle and its report), run (one calibration from the first prompt to the bundle, for the terminal and the
desktop viewer alike)."""
